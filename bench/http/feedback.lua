-- wrk script for bench/run_ingest.sh: POST /v1/feedback with BATCH events (environment, default
-- 10), each for a user and an item drawn uniformly from USERS and ITEMS (default 100000 each), of
-- a random type among view/click/cart/purchase. done() prints one machine-readable line; events
-- per second is requests per second times BATCH.
local batch = tonumber(os.getenv("BATCH") or "10")
local users = tonumber(os.getenv("USERS") or "100000")
local items = tonumber(os.getenv("ITEMS") or "100000")
local types = {"view", "click", "cart", "purchase"}
-- AUTH: an Authorization header value (a server with an API key). MAX_REQUESTS: stop after about
-- this many answered requests in all (split over WRK_THREADS threads, default 2); 0 = no limit.
local auth = os.getenv("AUTH")
local per_thread = math.ceil(tonumber(os.getenv("MAX_REQUESTS") or "0") /
                             tonumber(os.getenv("WRK_THREADS") or "2"))
local answered = 0
-- RATE: aim at about this many events/s in all (CONNECTIONS connections, default 16, over
-- WRK_THREADS threads), each connection pausing between requests; 0 = as fast as answers come
-- (the default). The pause starts at CONNECTIONS x BATCH / RATE and is corrected once a second
-- by what this thread sent in the last one, since each request's latency adds to it (wrk's Lua
-- has no finer clock than os.time()).
local rate = tonumber(os.getenv("RATE") or "0")
local pause_ms = 0
local target = 0  -- requests/s of this thread
local second, sent = 0, 0
if rate > 0 then
  pause_ms = tonumber(os.getenv("CONNECTIONS") or "16") * batch * 1000 / rate
  target = rate / batch / tonumber(os.getenv("WRK_THREADS") or "2")
end

function delay()
  if target > 0 then
    local now = os.time()
    if now ~= second then
      if now == second + 1 and sent > 0 then
        pause_ms = math.max(0, math.min(pause_ms * sent / target, 10000))
      end
      second, sent = now, 0
    end
    sent = sent + 1
  end
  return pause_ms
end

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
  local headers = {["Content-Type"] = "application/json"}
  if auth then headers["Authorization"] = auth end
  return wrk.format("POST", "/v1/feedback", headers, "[" .. table.concat(events, ",") .. "]")
end

function response(status, headers, body)
  answered = answered + 1
  if per_thread > 0 and answered >= per_thread then wrk.thread:stop() end
end

dofile("bench/http/report.lua")

function done(summary, latency, requests)
  report(summary, latency, batch)
end
