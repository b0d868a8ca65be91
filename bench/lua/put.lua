-- PutItem of a ~200-byte item under a key no other request uses.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("PutItem", string.format('{"TableName":"%s","Item":%s}',
    b.table, b.item_json(b.next_key(), "0")))
end
