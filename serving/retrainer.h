// Retrainer: the server's continuous retraining and its model swaps.
//
// A background thread retrains (training/retrain.h: the live model's training interactions plus
// the new events, warm-started from the live factors, gated on a temporal holdout against the
// live model) when `every_events` new events have been stored or `every_minutes` have passed
// with new events, or when asked (POST /v1/admin/retrain). It trains on its own thread at low
// CPU priority (nice) in a oneTBB arena of `threads` threads, so that serving keeps the cores.
//
// A candidate that passes the gate is saved as a new version of the models directory (with its
// item index) and swapped in (serving/model_swapper.h: prepare, re-fold the users with newer
// feedback, activate; so a user's feedback is never lost across a swap, and no request waits
// for one); one the gate refuses is saved under MODELS/refused/ (never served) and the refusal
// is logged and counted. Between retrains, new items are folded in and indexed
// (serving/new_item_indexer.h). Counters go to a Metrics (serving/metrics.h), lines to a Logger.
#ifndef RECLOOP_SERVING_RETRAINER_H_
#define RECLOOP_SERVING_RETRAINER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "base/logger.h"
#include "base/timer.h"
#include "data/event_store.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "serving/model_swapper.h"
#include "serving/new_item_indexer.h"
#include "serving/retrain_control.h"
#include "training/retrain.h"

namespace recloop {

struct RetrainerOptions {
  // Retrain after this many new events (0 = not by count) or this many minutes since the last
  // retrain if there are new events (0 = not by time). Both 0: only on request.
  int64_t every_events = 10'000;
  double every_minutes = 60;
  // Warm-started ALS iterations of a retrain.
  int iterations = 5;
  // oneTBB threads of a retrain, and the nice value (0..19) of its threads.
  int threads = 1;
  int nice = 19;
  // Versions kept in the models directory (and in MODELS/refused); the oldest are removed.
  int keep_versions = 5;
  // The candidate's regularisation; negative = the live model's. (Exists for operators who
  // retune, and for the test that checks the gate refuses a deliberately worse model.)
  float regularization = -1.0f;
  // Holdout and gate (RetrainOptions::train and type_weights are filled by the retrainer).
  RetrainOptions gate;
  // A new item (unknown to the live model) with this many events from users the model knows
  // gets a folded-in item vector and enters the item index before the next retrain; 0 = never.
  int new_item_min_events = 5;
};

// Thread safety: every public method may be called from any thread.
class Retrainer : public RetrainControl {
 public:
  // All pointers must outlive the Retrainer; `folder` folds users in (serving/feedback_folder.h,
  // whose feedback options the retrainer's event values follow). `metrics` (null: the
  // retrainer keeps its own) receives the counters; `log` the outcome of every retrain, swap
  // and new-item indexing. Starts the background thread.
  Retrainer(LiveModel* live, EventStore* events, FeedbackFolder* folder, RetrainerOptions options,
            Metrics* metrics = nullptr, Logger* log = StderrLog());
  ~Retrainer() override;  // stops the thread (a retrain in progress finishes first)
  Retrainer(const Retrainer&) = delete;
  Retrainer& operator=(const Retrainer&) = delete;

  // Tells the retrainer that `events` were stored (they count towards every_events, and those
  // of items the live model does not know towards new_item_min_events).
  void NoteEvents(std::span<const Event> events) override;

  // Starts a retrain now. With `wait`, blocks until it finishes and returns its outcome;
  // otherwise returns nullopt at once. Errors: AlreadyExists if one is already running (its
  // outcome will be in Last()).
  absl::StatusOr<std::optional<RetrainOutcome>> RetrainNow(bool wait) override;

  // Swaps the version before the live one back in (see the header comment) and points
  // MODELS/current at it. Returns the version now live. Errors: FailedPrecondition if there is
  // no earlier version; the loader's errors.
  absl::StatusOr<std::string> Rollback() override;
  absl::Status Promote(const std::string& version) override;

  // On a store shared with other replicas (EventStore::shared): swaps in the models directory's
  // `current` version when another replica has promoted or rolled back to it, so /v1/model
  // agrees everywhere within a pass of the replica follower, which calls this. A version that
  // fails to load is logged once and not retried until `current` changes again.
  void FollowCurrent();

  bool running() const override { return running_.load(); }
  std::optional<RetrainOutcome> Last() const override;

  // Prometheus text of the retrainer's counters (appended to /metrics): Metrics::RenderRetrain.
  std::string RenderMetrics() const override { return metrics_->RenderRetrain(); }

 private:
  void Loop();
  RetrainOutcome RunOnce();
  // The retrain's candidate saved and, if the gate passed, swapped in (under the swap lock).
  RetrainOutcome SaveAndSwap(const ModelSnapshot& parent, RetrainResult result, RetrainOutcome o);
  void Finish(RetrainOutcome& o, std::string outcome, std::string message,
              SteadyClock::time_point start) const;

  LiveModel* live_;
  EventStore* events_;
  FeedbackFolder* folder_;
  RetrainerOptions options_;
  std::unique_ptr<Metrics> own_metrics_;
  Metrics* metrics_;
  Logger* log_;
  ModelSwapper swapper_;  // one swap (promotion, rollback or new items) at a time
  NewItemIndexer new_items_;

  std::string unfollowable_;  // FollowCurrent's failed version; guarded by swapper_.Lock()

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool requested_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pending_events_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t runs_started_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t runs_finished_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<RetrainOutcome> last_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_RETRAINER_H_
