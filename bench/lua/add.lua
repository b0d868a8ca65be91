-- UpdateItem ADD 1 to a counter of a random preloaded key (a pure increment).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("UpdateItem", string.format(
    '{"TableName":"%s","Key":{"pk":{"S":"%s"},"sk":{"S":"0"}},'
      .. '"UpdateExpression":"ADD #c :one","ExpressionAttributeNames":{"#c":"c"},'
      .. '"ExpressionAttributeValues":{":one":{"N":"1"}}}',
    b.table, b.preloaded_key()))
end
