// Retrainer: the server's continuous retraining and its model swaps.
//
// A background thread retrains (training/retrain.h: the live model's training interactions plus
// the new events, warm-started from the live factors, gated on a temporal holdout against the
// live model) when `every_events` new events have been stored or `every_minutes` have passed
// with new events, or when asked (POST /v1/admin/retrain). It trains on its own thread at low
// CPU priority (nice) in a oneTBB arena of `threads` threads, so that serving keeps the cores.
//
// A candidate that passes the gate is saved as a new version of the models directory (with its
// item index) and swapped in; one the gate refuses is saved under MODELS/refused/ (never served)
// and the refusal is logged and counted. Swapping a version in (a promotion or a rollback):
//   1. the version is loaded into a snapshot that is not yet live (LiveModel::Prepare);
//   2. every user with events after the version's last trained event is folded in against it
//      into the overlay, beside the live version's entries (users keep being served meanwhile);
//   3. the snapshot goes live atomically (LiveModel::Activate);
//   4. users whose events arrived during step 2 are folded in again, and the old version's
//      overlay entries are dropped.
// So a user's feedback is never lost across a swap, and no request waits for one.
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
#include <utility>
#include <vector>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "data/event_store.h"
#include "serving/feedback.h"
#include "serving/live_model.h"
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

// The outcome of one retrain.
struct RetrainOutcome {
  std::string outcome;        // "promoted", "refused", "skipped" (nothing new), "discarded"
                              // (the live model changed meanwhile) or "failed"
  std::string version;        // the version written (promoted or refused), if any
  std::string parent_version; // the live version it started from
  std::string message;        // the gate's reason or the error
  GateResult gate;
  int64_t new_events = 0;
  double seconds = 0.0;
  std::string finished_utc;
};

// Thread safety: every public method may be called from any thread.
class Retrainer {
 public:
  // All pointers must outlive the Retrainer. Starts the background thread.
  Retrainer(LiveModel* live, EventStore* events, UserOverlay* overlay, FeedbackOptions feedback,
            RetrainerOptions options);
  ~Retrainer();  // stops the thread (a retrain in progress finishes first)
  Retrainer(const Retrainer&) = delete;
  Retrainer& operator=(const Retrainer&) = delete;

  // Tells the retrainer that `events` were stored (they count towards every_events, and those
  // of items the live model does not know towards new_item_min_events).
  void NoteEvents(std::span<const Event> events);

  // Starts a retrain now. With `wait`, blocks until it finishes and returns its outcome;
  // otherwise returns nullopt at once. Errors: AlreadyExists if one is already running (its
  // outcome will be in Last()).
  absl::StatusOr<std::optional<RetrainOutcome>> RetrainNow(bool wait);

  // Swaps the version before the live one back in (see the header comment) and points
  // MODELS/current at it. Returns the version now live. Errors: FailedPrecondition if there is
  // no earlier version; the loader's errors.
  absl::StatusOr<std::string> Rollback();

  // Folds in every user with events after the live model's last trained event (the overlay is
  // in memory: a restarted server calls this before serving, so that no customer's feedback is
  // forgotten). Returns the number of users folded.
  absl::StatusOr<int64_t> RestoreFolds();

  bool running() const { return running_.load(); }
  std::optional<RetrainOutcome> Last() const;

  // Prometheus text of the retrainer's counters (appended to /metrics).
  std::string RenderMetrics() const;

 private:
  void Loop();
  RetrainOutcome RunOnce();
  // Swaps `version_dir` in (steps 1-4 above). Requires swap_mu_.
  absl::Status SwapInLocked(const std::string& version_dir);
  // Folds in again every user with events after `after_seq` (and every user erased after it)
  // against `snap`. Returns the largest seq seen; counts the users in *users if given.
  absl::StatusOr<int64_t> RefoldAfter(const ModelSnapshot& snap, int64_t after_seq,
                                      int64_t* users = nullptr);
  // Folds `users` in again against `snap` and publishes them in the overlay.
  absl::Status RefoldUsers(const ModelSnapshot& snap, const std::set<std::string>& users);
  // Folds each of `items` (item -> its (user, value) events) in against the live model's user
  // side, appends those it can to a copy of the live model, rebuilds the item index and
  // publishes it under the same version; then folds the items' users in again.
  void AddNewItems(std::map<std::string, std::vector<std::pair<std::string, float>>> items);

  LiveModel* live_;
  EventStore* events_;
  UserOverlay* overlay_;
  FeedbackOptions feedback_;
  RetrainerOptions options_;

  std::mutex swap_mu_;  // one swap (promotion or rollback) at a time

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  bool stop_ = false;
  bool requested_ = false;
  int64_t pending_events_ = 0;
  uint64_t runs_started_ = 0, runs_finished_ = 0;
  std::optional<RetrainOutcome> last_;
  std::map<std::string, uint64_t> outcomes_;  // outcome -> count
  uint64_t rollbacks_ = 0;
  // New items: their events so far, and those that reached new_item_min_events.
  std::map<std::string, std::vector<std::pair<std::string, float>>> new_item_events_;
  std::set<std::string> due_items_;
  uint64_t new_items_added_ = 0;
  // The live version's user side as a FoldIn over users (folds items in), built on first use.
  std::string item_fold_version_;
  std::unique_ptr<FactorModel> user_side_;
  std::unique_ptr<FoldIn> item_fold_;
  std::atomic<bool> running_{false};
  std::thread thread_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_RETRAINER_H_
