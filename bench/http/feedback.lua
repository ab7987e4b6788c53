-- wrk script for bench/run_ingest.sh: POST /v1/feedback with BATCH events (environment, default
-- 10), each for a user and an item drawn uniformly from USERS and ITEMS (default 100000 each), of
-- a random type among view/click/cart/purchase. done() prints one machine-readable line; events
-- per second is requests per second times BATCH.
local batch = tonumber(os.getenv("BATCH") or "10")
local users = tonumber(os.getenv("USERS") or "100000")
local items = tonumber(os.getenv("ITEMS") or "100000")
local types = {"view", "click", "cart", "purchase"}

function init(args)
  math.randomseed(tonumber(tostring({}):match("0x(%x+)"), 16) or os.time())
end

function request()
  local events = {}
  for i = 1, batch do
    events[i] = string.format('{"user":"u%d","item":"i%d","type":"%s"}',
                              math.random(0, users - 1), math.random(0, items - 1),
                              types[math.random(1, #types)])
  end
  return wrk.format("POST", "/v1/feedback", {["Content-Type"] = "application/json"},
                    "[" .. table.concat(events, ",") .. "]")
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.0f events_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests, seconds, summary.requests / seconds, summary.requests * batch / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
