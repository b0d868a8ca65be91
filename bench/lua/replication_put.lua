-- PutItem with distinct keys into table "bench" (replication catch-up benchmark).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-amz-json-1.0"
wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.PutItem"
local counter = 0
local thread_id = 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
request = function()
  counter = counter + 1
  local key = "missed-" .. os.time() .. "-" .. thread_id .. "-" .. counter
  local body = '{"TableName":"bench","Item":{"pk":{"S":"' .. key .. '"},"v":{"S":"' ..
    string.rep("x", 150) .. '"}}}'
  return wrk.format(nil, "/", nil, body)
end
