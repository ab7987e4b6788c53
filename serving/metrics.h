// Metrics: request counters and latency histograms by route and status, the feedback counters
// and the background retrainer's counters, rendered in the Prometheus text exposition format
// (version 0.0.4) for GET /metrics.
#ifndef RECLOOP_SERVING_METRICS_H_
#define RECLOOP_SERVING_METRICS_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace recloop {

// Thread safety: every method may be called concurrently.
class Metrics {
 public:
  // Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
  static constexpr std::array<double, 13> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};
  // Upper bounds (seconds) of the freshness lag's buckets: from a millisecond up to a minute,
  // so that a growing fold backlog shows in its p99 rather than past the last bucket.
  static constexpr std::array<double, 15> kFreshnessBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0};

  // Counts one answered request of `route` (a route template such as
  // "/v1/users/{user}/recommendations", never a raw path, so the label set stays bounded).
  void Observe(std::string_view route, int status, double micros);

  // The text exposition: the request metrics followed by `gauges` (name, help, value, and an
  // optional label set such as {version="v000002"}), one family per gauge.
  struct Gauge {
    std::string name;
    std::string help;
    double value = 0;
    std::string labels;  // e.g. version="v000002" (without braces); empty for none
  };
  std::string Render(const std::vector<Gauge>& gauges) const;

  // Authentication: a request that gave the key named `key` (empty: none or an unknown one)
  // and was answered `status` by the authorisation check (401 and 403 are counted as
  // refusals). Key names come from the key file, so the label set stays bounded.
  void CountAuth(std::string_view key, int status);

  // A request refused with 429 by a rate limit: `reason` is "connection", "key" or "address"
  // (a bounded label set).
  void CountRateLimited(std::string_view reason);

  // Feedback: events stored and rejected, and the freshness lag of one user's fold (seconds
  // from their events being acknowledged to their new vector being live). Each fold observes
  // its lag once, so the histogram's count is also recloop_feedback_folds_total.
  void CountFeedback(int64_t accepted, int64_t rejected);
  void ObserveFreshness(double seconds);
  // A POST /v1/feedback refused with 503 overloaded: `bound` is "fold_backlog" or
  // "write_queue" (serving/backpressure.h; a bounded label set).
  void CountBackpressure(std::string_view bound);

  // Retraining (serving/retrainer.h). One finished retrain: its outcome ("promoted", "refused",
  // "skipped", "discarded" or "failed"), wall time and, when its gate compared the models, the
  // gate's metric name and the two models' values.
  struct RetrainRun {
    std::string outcome;
    double seconds = 0;
    std::string gate_metric;  // empty: no comparison to show
    double gate_candidate = 0;
    double gate_live = 0;
  };
  void CountRetrain(const RetrainRun& run);
  // Whether a retrain runs now, and the events stored since the last one started.
  void SetRetrainState(bool running, int64_t pending_events);
  void CountRollback();
  void CountNewItems(int64_t items);  // new items folded in and indexed before a retrain
  // The retraining families (recloop_retrain_*, recloop_new_items_total,
  // recloop_model_rollbacks_total), appended to /metrics by servers that retrain.
  std::string RenderRetrain() const;

 private:
  struct Route {
    std::map<int, uint64_t> by_status;
    std::array<uint64_t, kBuckets.size()> buckets{};  // non-cumulative counts
    uint64_t count = 0;
    double sum_seconds = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Route, std::less<>> routes_ ABSL_GUARDED_BY(mu_);
  struct Freshness {
    std::array<uint64_t, kFreshnessBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum_seconds = 0;
  };
  Freshness freshness_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, uint64_t, std::less<>> key_requests_ ABSL_GUARDED_BY(mu_);
  std::map<int, uint64_t> auth_refusals_ ABSL_GUARDED_BY(mu_);  // status -> count
  std::map<std::string, uint64_t, std::less<>> rate_limited_ ABSL_GUARDED_BY(mu_);  // by reason
  uint64_t events_accepted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t events_rejected_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t backpressure_fold_backlog_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t backpressure_write_queue_ ABSL_GUARDED_BY(mu_) = 0;
  // Retraining.
  std::map<std::string, uint64_t, std::less<>> retrains_ ABSL_GUARDED_BY(mu_);  // outcome -> count
  std::optional<RetrainRun> last_retrain_ ABSL_GUARDED_BY(mu_);
  bool retrain_running_ ABSL_GUARDED_BY(mu_) = false;
  int64_t retrain_pending_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t new_items_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rollbacks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_METRICS_H_
