-- Query one partition ("query"), a page of Limit 10 from a random sort-key start.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  local from = string.format("s-%06d", math.random(0, math.max(b.query_items - 10, 0)))
  return b.post("Query", string.format(
    '{"TableName":"%s","KeyConditionExpression":"pk = :pk AND sk >= :from",'
      .. '"ExpressionAttributeValues":{":pk":{"S":"query"},":from":{"S":"%s"}},"Limit":10}',
    b.table, from))
end
