-- GetItem on a random preloaded key (strongly consistent, like a read-after-write client).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("GetItem", string.format(
    '{"TableName":"%s","Key":{"pk":{"S":"%s"},"sk":{"S":"0"}},"ConsistentRead":true}',
    b.table, b.preloaded_key()))
end
