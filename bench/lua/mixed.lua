-- 80% GetItem on preloaded keys, 20% PutItem of new keys, chosen at random per request.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  if math.random() < 0.8 then
    return b.post("GetItem", string.format(
      '{"TableName":"%s","Key":{"pk":{"S":"%s"},"sk":{"S":"0"}},"ConsistentRead":true}',
      b.table, b.preloaded_key()))
  end
  return b.post("PutItem", string.format('{"TableName":"%s","Item":%s}',
    b.table, b.item_json(b.next_key(), "0")))
end
