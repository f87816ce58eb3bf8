-- wrk script for bench_ingest: cycles through precomputed signed webhook requests.
-- The file (wrk args[1]) holds one request per line: "<X-Twilio-Signature>\t<urlencoded body>".
-- Thread k of T sends lines k, k+T, k+2T, ... so every request carries its own MessageSid;
-- done() prints one JSON line (prefix WRKJSON) with latency percentiles and per-thread counts.
local threads = {}
local lines = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  nthreads = tonumber(args[2])
  for line in io.lines(path) do
    local sig, body = line:match("^([^\t]*)\t(.*)$")
    lines[#lines + 1] = { sig, body }
  end
  index = id
  sent = 0
  non200 = 0
  wrapped = 0
end

function request()
  if index >= #lines then
    wrapped = wrapped + 1 -- ran out of unique bodies: reported, so the run can be rejected
  end
  local entry = lines[(index % #lines) + 1]
  index = index + nthreads
  sent = sent + 1
  return wrk.format("POST", "/twilio/sms", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = entry[1],
  }, entry[2])
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local sent_by_thread, non200_total, wrapped_total = {}, 0, 0
  for _, t in ipairs(threads) do
    sent_by_thread[#sent_by_thread + 1] = tostring(t:get("sent"))
    non200_total = non200_total + t:get("non200")
    wrapped_total = wrapped_total + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
    '"timeouts":%d,"non200":%d,"wrapped":%d,"sent_by_thread":[%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, non200_total, wrapped_total, table.concat(sent_by_thread, ",")))
end
