-- Loaded by every libaipalq API scenario (bench/api_bench.py): the API key header, and a
-- done() hook that prints one line "WRK_RESULT {json}": requests, bytes, errors by kind
-- (wrk's errors.status counts responses with a status > 399) and latency percentiles in
-- microseconds.
local key = os.getenv("AIPALQ_BENCH_KEY")
if key and #key > 0 then
  wrk.headers["Authorization"] = "Bearer " .. key
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write("WRK_RESULT " .. string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max) .. "\n")
end
