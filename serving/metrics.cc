#include "serving/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace recloop {

void Metrics::Observe(std::string_view route, int status, double micros) {
  const double seconds = micros * 1e-6;
  const size_t bucket =
      std::lower_bound(kBuckets.begin(), kBuckets.end(), seconds) - kBuckets.begin();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), Route{}).first;
  Route& r = it->second;
  ++r.by_status[status];
  if (bucket < kBuckets.size()) ++r.buckets[bucket];
  ++r.count;
  r.sum_seconds += seconds;
}

std::string Metrics::Render(const std::vector<Gauge>& gauges) const {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StrAppend(&out,
                    "# HELP recloop_http_requests_total HTTP requests answered, by route and "
                    "status.\n# TYPE recloop_http_requests_total counter\n");
    for (const auto& [route, r] : routes_) {
      for (const auto& [status, n] : r.by_status) {
        absl::StrAppend(&out, "recloop_http_requests_total{route=\"", route, "\",status=\"",
                        status, "\"} ", n, "\n");
      }
    }
    absl::StrAppend(&out,
                    "# HELP recloop_http_request_duration_seconds Time from a request read to "
                    "its response handed to the socket.\n"
                    "# TYPE recloop_http_request_duration_seconds histogram\n");
    for (const auto& [route, r] : routes_) {
      uint64_t cumulative = 0;
      for (size_t b = 0; b < kBuckets.size(); ++b) {
        cumulative += r.buckets[b];
        absl::StrAppend(&out, "recloop_http_request_duration_seconds_bucket{route=\"", route,
                        "\",le=\"", kBuckets[b], "\"} ", cumulative, "\n");
      }
      absl::StrAppend(&out, "recloop_http_request_duration_seconds_bucket{route=\"", route,
                      "\",le=\"+Inf\"} ", r.count, "\n");
      absl::StrAppend(&out, "recloop_http_request_duration_seconds_sum{route=\"", route, "\"} ",
                      r.sum_seconds, "\n");
      absl::StrAppend(&out, "recloop_http_request_duration_seconds_count{route=\"", route,
                      "\"} ", r.count, "\n");
    }
  }
  for (const auto& g : gauges) {
    absl::StrAppend(&out, "# HELP ", g.name, " ", g.help, "\n# TYPE ", g.name, " gauge\n",
                    g.name, g.labels.empty() ? "" : "{", g.labels, g.labels.empty() ? "" : "}",
                    " ", g.value, "\n");
  }
  return out;
}

}  // namespace recloop
