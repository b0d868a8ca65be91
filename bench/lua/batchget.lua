-- BatchGetItem of 100 distinct preloaded keys: from a random start, every 37th key
-- (37 and the key count share no factor, so the 100 keys differ), eventually consistent.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

local STRIDE = 37
local COUNT = 100

function request()
  local start = math.random(0, b.keys - 1)
  local keys = {}
  for j = 0, COUNT - 1 do
    keys[#keys + 1] = string.format('{"pk":{"S":"item-%06d"},"sk":{"S":"0"}}',
      (start + j * STRIDE) % b.keys)
  end
  return b.post("BatchGetItem", string.format('{"RequestItems":{"%s":{"Keys":[%s]}}}',
    b.table, table.concat(keys, ",")))
end
