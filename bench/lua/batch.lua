-- BatchWriteItem of 25 PutRequests (the maximum), each a ~200-byte item with a new key.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

function request()
  local puts = {}
  for i = 1, 25 do
    puts[i] = '{"PutRequest":{"Item":' .. b.item_json(b.next_key(), "0") .. '}}'
  end
  return b.post("BatchWriteItem", string.format('{"RequestItems":{"%s":[%s]}}',
    b.table, table.concat(puts, ",")))
end
