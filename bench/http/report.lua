-- Shared by the wrk scripts of bench/: prints one machine-readable RESULT line from wrk's
-- summary and latency histogram, with `batch` events per request (1 for plain GETs). The run
-- scripts start wrk from the repository root, where dofile finds this file.
function report(summary, latency, batch)
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.0f events_per_s=%.0f p50_ms=%.3f p90_ms=%.3f " ..
    "p99_ms=%.3f errors=%d\n",
    summary.requests, seconds, summary.requests / seconds, summary.requests * batch / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, errors))
end
