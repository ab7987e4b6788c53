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

namespace {

void AddToHistogram(double seconds, uint64_t* buckets, uint64_t* count, double* sum) {
  const size_t bucket = std::lower_bound(Metrics::kBuckets.begin(), Metrics::kBuckets.end(),
                                         seconds) - Metrics::kBuckets.begin();
  if (bucket < Metrics::kBuckets.size()) ++buckets[bucket];
  ++*count;
  *sum += seconds;
}

}  // namespace

void Metrics::CountFeedback(int64_t accepted, int64_t rejected) {
  std::lock_guard<std::mutex> lock(mu_);
  events_accepted_ += accepted;
  events_rejected_ += rejected;
}

void Metrics::ObserveFreshness(double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  AddToHistogram(seconds, freshness_.buckets.data(), &freshness_.count, &freshness_.sum_seconds);
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StrAppend(&out,
                    "# HELP recloop_feedback_events_total Feedback events stored (accepted) "
                    "and refused (rejected).\n# TYPE recloop_feedback_events_total counter\n",
                    "recloop_feedback_events_total{outcome=\"accepted\"} ", events_accepted_,
                    "\nrecloop_feedback_events_total{outcome=\"rejected\"} ", events_rejected_,
                    "\n# HELP recloop_feedback_freshness_seconds From a user's feedback being "
                    "acknowledged (durable) to their new vector being live, per fold.\n"
                    "# TYPE recloop_feedback_freshness_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += freshness_.buckets[b];
      absl::StrAppend(&out, "recloop_feedback_freshness_seconds_bucket{le=\"", kBuckets[b],
                      "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "recloop_feedback_freshness_seconds_bucket{le=\"+Inf\"} ",
                    freshness_.count, "\nrecloop_feedback_freshness_seconds_sum ",
                    freshness_.sum_seconds, "\nrecloop_feedback_freshness_seconds_count ",
                    freshness_.count, "\n");
  }
  for (const auto& g : gauges) {
    absl::StrAppend(&out, "# HELP ", g.name, " ", g.help, "\n# TYPE ", g.name, " gauge\n",
                    g.name, g.labels.empty() ? "" : "{", g.labels, g.labels.empty() ? "" : "}",
                    " ", g.value, "\n");
  }
  return out;
}

}  // namespace recloop
