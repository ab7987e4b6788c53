// OnlineGate: the A/B test's promotion gate (serving/experiment.h PromotionRule) checked while
// the server runs. Every `every`, it compares the live counts of the experiment's control and
// the rule's variant (serving/impression_log.h); once both have served min_impressions lists it
// decides once: promote (the variant's model version is swapped in as the live model through
// the same swap as a retrain's promotion, and becomes the models directory's `current`) or
// refuse (the live model stays). Either way the decision ends the test
// (ExperimentHolder::Serving: everyone is served the live model with no variant), and GET
// /v1/admin/experiments shows it. This gate is beside the retrainer's offline gate, not
// instead of it: a version reaches an experiment only after it was trained and saved.
#ifndef RECLOOP_SERVING_ONLINE_GATE_H_
#define RECLOOP_SERVING_ONLINE_GATE_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/logger.h"
#include "serving/experiment.h"
#include "serving/impression_log.h"

namespace recloop {

// Each variant of `experiment`, in order, with what its lists earned so far in this process.
std::vector<VariantComparison> LiveComparisons(const Experiment& experiment,
                                               const ImpressionLog* impressions);

// Thread safety: CheckNow may be called from any thread (the gate's own calls it too).
class OnlineGate {
 public:
  // Swaps in the version named by the variant's `model`.
  using Promote = std::function<absl::Status(const std::string& version)>;

  // All pointers must outlive the gate. With every > 0, starts a thread that calls CheckNow at
  // that interval until destruction; with 0, only CheckNow's callers check.
  OnlineGate(ExperimentHolder* experiment, const ImpressionLog* impressions, Promote promote,
             Logger* log, std::chrono::milliseconds every = std::chrono::milliseconds(200));
  ~OnlineGate();
  OnlineGate(const OnlineGate&) = delete;
  OnlineGate& operator=(const OnlineGate&) = delete;

  // Decides if the experiment in force has a rule, no decision yet, and enough impressions.
  void CheckNow();

 private:
  ExperimentHolder* const experiment_;
  const ImpressionLog* const impressions_;
  const Promote promote_;
  Logger* const log_;
  std::mutex check_mu_;  // one decision at a time
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_ONLINE_GATE_H_
