-- Shared by every workload script: DynamoDB JSON 1.0 headers, per-thread key counters,
-- status counting, and a done() that prints one machine-readable line for bench/wrk.py:
--   BENCH_RESULT {"requests":..,"duration_us":..,"latency_us":{"p50":..},"status":{"200":..},..}
--
-- Configuration comes from the environment (set by bench/wrk.py):
--   BENCH_TABLE  table name          BENCH_KEYS         number of preloaded items (item-%06d)
--   BENCH_RUN    tag unique per run  BENCH_QUERY_ITEMS  items preloaded in the query partition
local M = {}

M.table = os.getenv("BENCH_TABLE") or "bench"
M.keys = tonumber(os.getenv("BENCH_KEYS") or "1000")
M.run = os.getenv("BENCH_RUN") or "r"
M.query_items = tonumber(os.getenv("BENCH_QUERY_ITEMS") or "100")
M.payload = string.rep("x", 120)

-- dynalite checks the shape of a SigV4 Authorization header (not the signature itself).
local AUTH = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/dynamodb/aws4_request, "
  .. "SignedHeaders=host;x-amz-date, Signature=" .. string.rep("0", 64)

local header_cache = {}
function M.headers(op)
  local h = header_cache[op]
  if h == nil then
    h = {
      ["Content-Type"] = "application/x-amz-json-1.0",
      ["X-Amz-Target"] = "DynamoDB_20120810." .. op,
      ["X-Amz-Date"] = "20260101T000000Z",
      ["Authorization"] = AUTH,
    }
    header_cache[op] = h
  end
  return h
end

function M.post(op, body)
  return wrk.format("POST", "/", M.headers(op), body)
end

-- A ~200-byte item (as DynamoDB JSON) with the given key.
function M.item_json(pk, sk)
  return string.format('{"pk":{"S":"%s"},"sk":{"S":"%s"},"n":{"N":"%d"},"t":{"S":"bench"},'
    .. '"payload":{"S":"%s"}}', pk, sk, math.random(1, 1000000), M.payload)
end

function M.preloaded_key()
  return string.format("item-%06d", math.random(0, M.keys - 1))
end

-- Distinct keys: every thread has its own id and counter; the run tag separates runs.
counter = 0
function M.next_key()
  counter = counter + 1
  return string.format("put-%s-%d-%d", M.run, tid or 0, counter)
end

-- Threads, statuses and the first error body per thread ---------------------------------
local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(tid * 7919 + os.time())
  statuses = {}
  first_error = nil
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status >= 300 and first_error == nil then
    first_error = string.format("%d %s", status, string.sub(body or "", 1, 300))
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local total = {}
  local errors = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses") or {}
    for code, n in pairs(s) do total[code] = (total[code] or 0) + n end
    local e = thread:get("first_error")
    if e ~= nil and #errors < 3 then table.insert(errors, json_string(e)) end
  end
  local status_parts = {}
  for code, n in pairs(total) do
    table.insert(status_parts, string.format('"%d":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"status":{%s},"error_samples":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout,
    table.concat(status_parts, ","), table.concat(errors, ",")))
end

return M
