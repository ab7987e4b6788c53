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

dofile("bench/http/report.lua")

function done(summary, latency, requests)
  report(summary, latency, batch)
end
