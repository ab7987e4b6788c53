-- wrk script for bench/run_http.sh: GET /v1/users/u<k>/recommendations?n=10 for a user k drawn
-- uniformly from 0..USERS-1 (environment variable, default 100000) on every request, so that
-- the server computes a fresh top-10 each time. With FIXED_PATH set instead, every request asks for
-- that fixed path (the nginx ceiling). QUERY (e.g. "&explain=true") is appended to every
-- generated path. done() prints one machine-readable line.
local users = tonumber(os.getenv("USERS") or "100000")
local query = os.getenv("QUERY") or ""
local fixed = os.getenv("FIXED_PATH")
if fixed == "" then fixed = nil end
local counter = 0

function init(args)
  -- One seed per wrk thread, so that threads do not replay the same users.
  counter = tonumber(tostring({}):match("0x(%x+)"), 16) or os.time()
  math.randomseed(counter)
end

function request()
  if fixed then
    return wrk.format("GET", fixed)
  end
  return wrk.format("GET", "/v1/users/u" .. math.random(0, users - 1) .. "/recommendations?n=10" .. query)
end

dofile("bench/http/report.lua")

function done(summary, latency, requests)
  report(summary, latency, 1)
end
