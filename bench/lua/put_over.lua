-- PutItem over a random preloaded key (item-%06d, sk "0") with a new random n: every
-- write replaces an item, so a stream records a MODIFY with both images.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("PutItem", string.format('{"TableName":"%s","Item":%s}',
    b.table, b.item_json(b.preloaded_key(), "0")))
end
