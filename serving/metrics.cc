#include "serving/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace recloop {

namespace {

// The bucket of `seconds` among `bounds`: bounds.size() past the last (+Inf only).
template <size_t N>
size_t BucketOf(const std::array<double, N>& bounds, double seconds) {
  return std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
}

}  // namespace

void Metrics::Observe(std::string_view route, int status, double micros) {
  const double seconds = micros * 1e-6;
  const size_t bucket = BucketOf(kBuckets, seconds);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = routes_.find(route);
  if (it == routes_.end()) it = routes_.emplace(std::string(route), Route{}).first;
  Route& r = it->second;
  ++r.by_status[status];
  if (bucket < kBuckets.size()) ++r.buckets[bucket];
  ++r.count;
  r.sum_seconds += seconds;
}

void Metrics::CountFeedback(int64_t accepted, int64_t rejected) {
  std::lock_guard<std::mutex> lock(mu_);
  events_accepted_ += accepted;
  events_rejected_ += rejected;
}

void Metrics::CountBackpressure(std::string_view bound) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(bound == "write_queue" ? backpressure_write_queue_ : backpressure_fold_backlog_);
}

void Metrics::CountAuth(std::string_view key, int status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!key.empty()) {
    auto it = key_requests_.find(key);
    if (it == key_requests_.end()) it = key_requests_.emplace(std::string(key), 0).first;
    ++it->second;
  }
  if (status == 401 || status == 403) ++auth_refusals_[status];
}

void Metrics::CountRateLimited(std::string_view reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rate_limited_.find(reason);
  if (it == rate_limited_.end()) it = rate_limited_.emplace(std::string(reason), 0).first;
  ++it->second;
}

void Metrics::ObserveFreshness(double seconds) {
  const size_t bucket = BucketOf(kFreshnessBuckets, seconds);
  std::lock_guard<std::mutex> lock(mu_);
  if (bucket < kFreshnessBuckets.size()) ++freshness_.buckets[bucket];
  ++freshness_.count;
  freshness_.sum_seconds += seconds;
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
        absl::StrAppend(&out, "recloop_http_requests_total{route=\"", route, "\",status=\"", status,
                        "\"} ", n, "\n");
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
      absl::StrAppend(&out, "recloop_http_request_duration_seconds_count{route=\"", route, "\"} ",
                      r.count, "\n");
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
    for (size_t b = 0; b < kFreshnessBuckets.size(); ++b) {
      cumulative += freshness_.buckets[b];
      absl::StrAppend(&out, "recloop_feedback_freshness_seconds_bucket{le=\"", kFreshnessBuckets[b],
                      "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, "recloop_feedback_freshness_seconds_bucket{le=\"+Inf\"} ",
                    freshness_.count, "\nrecloop_feedback_freshness_seconds_sum ",
                    freshness_.sum_seconds, "\nrecloop_feedback_freshness_seconds_count ",
                    freshness_.count, "\n");
    absl::StrAppend(&out,
                    "# HELP recloop_feedback_folds_total Folds of a user run after their "
                    "feedback (by a folder thread or a request folding on read; failed ones "
                    "too).\n"
                    "# TYPE recloop_feedback_folds_total counter\nrecloop_feedback_folds_total ",
                    freshness_.count,
                    "\n# HELP recloop_feedback_rejected_backpressure_total Feedback requests "
                    "refused with 503 overloaded, storing nothing, by the bound reached.\n"
                    "# TYPE recloop_feedback_rejected_backpressure_total counter\n"
                    "recloop_feedback_rejected_backpressure_total{bound=\"fold_backlog\"} ",
                    backpressure_fold_backlog_,
                    "\nrecloop_feedback_rejected_backpressure_total{bound=\"write_queue\"} ",
                    backpressure_write_queue_, "\n");
    absl::StrAppend(&out,
                    "# HELP recloop_http_requests_by_key_total Authenticated requests, by the "
                    "name of the key they gave.\n# TYPE recloop_http_requests_by_key_total "
                    "counter\n");
    for (const auto& [key, n] : key_requests_) {
      absl::StrAppend(&out, "recloop_http_requests_by_key_total{key=\"", key, "\"} ", n, "\n");
    }
    absl::StrAppend(&out,
                    "# HELP recloop_http_auth_refusals_total Requests refused by the "
                    "authorisation check: 401 no or unknown key, 403 a key without the route's "
                    "scope.\n# TYPE recloop_http_auth_refusals_total counter\n");
    for (const int status : {401, 403}) {
      const auto it = auth_refusals_.find(status);
      absl::StrAppend(&out, "recloop_http_auth_refusals_total{status=\"", status, "\"} ",
                      it == auth_refusals_.end() ? 0 : it->second, "\n");
    }
    absl::StrAppend(&out,
                    "# HELP recloop_http_rate_limited_total Requests refused with 429 by a rate "
                    "limit, by the limit: per connection, per API key, per client address.\n"
                    "# TYPE recloop_http_rate_limited_total counter\n");
    for (const char* reason : {"connection", "key", "address"}) {
      const auto it = rate_limited_.find(reason);
      absl::StrAppend(&out, "recloop_http_rate_limited_total{reason=\"", reason, "\"} ",
                      it == rate_limited_.end() ? 0 : it->second, "\n");
    }
  }
  for (const auto& g : gauges) {
    absl::StrAppend(&out, "# HELP ", g.name, " ", g.help, "\n# TYPE ", g.name, " gauge\n", g.name,
                    g.labels.empty() ? "" : "{", g.labels, g.labels.empty() ? "" : "}", " ",
                    g.value, "\n");
  }
  return out;
}

void Metrics::CountRetrain(const RetrainRun& run) {
  std::lock_guard<std::mutex> lock(mu_);
  ++retrains_[run.outcome];
  last_retrain_ = run;
}

void Metrics::SetRetrainState(bool running, int64_t pending_events) {
  std::lock_guard<std::mutex> lock(mu_);
  retrain_running_ = running;
  retrain_pending_events_ = pending_events;
}

void Metrics::CountRollback() {
  std::lock_guard<std::mutex> lock(mu_);
  ++rollbacks_;
}

void Metrics::CountNewItems(int64_t items) {
  std::lock_guard<std::mutex> lock(mu_);
  new_items_ += static_cast<uint64_t>(items);
}

std::string Metrics::RenderRetrain() const {
  static constexpr const char* kOutcomes[] = {"promoted", "refused", "skipped", "discarded",
                                              "failed"};
  std::lock_guard<std::mutex> lock(mu_);
  std::string out =
      "# HELP recloop_retrain_total Background retrains by outcome (refused: the promotion gate "
      "refused the candidate).\n# TYPE recloop_retrain_total counter\n";
  for (const char* outcome : kOutcomes) {
    const auto it = retrains_.find(outcome);
    absl::StrAppend(&out, "recloop_retrain_total{outcome=\"", outcome, "\"} ",
                    it == retrains_.end() ? 0 : it->second, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP recloop_retrain_running 1 while a retrain runs.\n"
                  "# TYPE recloop_retrain_running gauge\nrecloop_retrain_running ",
                  retrain_running_ ? 1 : 0,
                  "\n# HELP recloop_retrain_pending_events Events stored since the last retrain "
                  "started.\n# TYPE recloop_retrain_pending_events gauge\n"
                  "recloop_retrain_pending_events ",
                  retrain_pending_events_,
                  "\n# HELP recloop_new_items_total New items folded in and indexed before a "
                  "retrain.\n# TYPE recloop_new_items_total counter\nrecloop_new_items_total ",
                  new_items_,
                  "\n# HELP recloop_model_rollbacks_total Rollbacks to an earlier version.\n"
                  "# TYPE recloop_model_rollbacks_total counter\nrecloop_model_rollbacks_total ",
                  rollbacks_, "\n");
  if (last_retrain_ && !last_retrain_->gate_metric.empty()) {
    absl::StrAppend(&out,
                    "# HELP recloop_retrain_gate_metric The last gate's metric on the holdout.\n"
                    "# TYPE recloop_retrain_gate_metric gauge\n"
                    "recloop_retrain_gate_metric{model=\"candidate\",metric=\"",
                    last_retrain_->gate_metric, "\"} ", last_retrain_->gate_candidate,
                    "\nrecloop_retrain_gate_metric{model=\"live\",metric=\"",
                    last_retrain_->gate_metric, "\"} ", last_retrain_->gate_live, "\n");
  }
  if (last_retrain_) {
    absl::StrAppend(&out,
                    "# HELP recloop_retrain_last_seconds Wall time of the last retrain.\n"
                    "# TYPE recloop_retrain_last_seconds gauge\nrecloop_retrain_last_seconds ",
                    last_retrain_->seconds, "\n");
  }
  return out;
}

}  // namespace recloop
