-- wrk's script for scripts/bench_serve.sh: POST /v1/moderate with request bodies read from the
-- file named by BODIES (one JSON body per line: real-length posts, 1 or 32 per request), every
-- connection walking the list from its own place. DELAY_MS (optional) paces each connection (the
-- soak's fixed load). Prints one JSON line: requests, seconds, errors, latency percentiles (us).
local bodies = {}
local next_body = 1
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")

function setup(thread)
  thread:set("id", thread.id or 0)
end

function init(args)
  for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
  next_body = (math.random(#bodies))
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/moderate", {["Content-Type"] = "application/json"}, bodies[next_body])
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean))
end
