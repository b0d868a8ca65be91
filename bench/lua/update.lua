-- UpdateItem on a random preloaded key: SET two attributes, ADD to a counter, REMOVE one,
-- under a ConditionExpression that holds (the item exists and the counter is bounded).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  return b.post("UpdateItem", string.format(
    '{"TableName":"%s","Key":{"pk":{"S":"%s"},"sk":{"S":"0"}},'
      .. '"UpdateExpression":"SET #t = :t, #u = :u ADD #c :one REMOVE #gone",'
      .. '"ConditionExpression":"attribute_exists(pk) AND (attribute_not_exists(#c) OR #c < :max)",'
      .. '"ExpressionAttributeNames":{"#t":"t","#u":"u","#c":"c","#gone":"gone"},'
      .. '"ExpressionAttributeValues":{":t":{"S":"updated"},":u":{"N":"%d"},'
      .. '":one":{"N":"1"},":max":{"N":"1000000000"}}}',
    b.table, b.preloaded_key(), math.random(1, 1000000)))
end
