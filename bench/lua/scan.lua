-- Scan a page of Limit 100 items after a random preloaded key (ExclusiveStartKey): the
-- page starts wherever that key falls in the system's scan order.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("Scan", string.format(
    '{"TableName":"%s","Limit":100,"ExclusiveStartKey":{"pk":{"S":"%s"},"sk":{"S":"0"}}}',
    b.table, b.preloaded_key()))
end
