-- One request, signed beforehand: the same method, body and headers every time.
-- bench/auth.py signs it with SigV4 (valid for DynamoDB's 5-minute window: a run is
-- shorter) and passes it in the environment:
--   BENCH_TARGET   DynamoDB_20120810.<Op>    BENCH_BODY   the JSON body
--   BENCH_HEADERS  extra header lines "Name: value", separated by "\n" (may be empty)
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local b = require("common")

local headers = {
  ["Content-Type"] = "application/x-amz-json-1.0",
  ["X-Amz-Target"] = os.getenv("BENCH_TARGET"),
}
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name ~= nil then headers[name] = value end
end
local body = os.getenv("BENCH_BODY")

function request()
  return wrk.format("POST", "/", headers, body)
end
