// FoldQueue: real-time fold-in off the ingestion path. POST /v1/feedback answers as soon as its
// events are durable and hands its users to this queue; folder threads fold each user in again
// (serving/feedback.h) and publish the result. A user with several batches waiting is folded
// once (coalescing), and a folder thread takes up to `max_batch` waiting users at a time, so
// that one pass pays once for the store's read, the locks and the wake-up (FeedbackFolder::
// FoldNow folds them with one read of their histories). A recommendation request for a user whose
// fold is still waiting folds them on the spot (or waits for the fold in flight), so a customer's
// next request always reflects every event they were acknowledged for: read-your-writes without
// making ingestion wait.
//
// Freshness lag (the /metrics histogram) is measured from a user's first waiting
// acknowledgement to their fold being published.
#ifndef RECLOOP_SERVING_FOLD_QUEUE_H_
#define RECLOOP_SERVING_FOLD_QUEUE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "base/logger.h"
#include "serving/metrics.h"

namespace recloop {

struct FoldQueueOptions {
  // Folder threads; 0 = one per core, at most 8. On 2 cores, two threads kept the backlog
  // drained where one did not (BENCHMARKS.md, issue 22).
  int threads = 0;
  // Users one call of the fold function takes at most (>= 1).
  int max_batch = 64;
  // Nice value (0..19) of the folder threads (ServeOptions::write_nice).
  int nice = 0;
};

// Thread safety: every public method may be called from any thread.
class FoldQueue {
 public:
  using Clock = std::chrono::steady_clock;
  // Folds users in again from the store and publishes the results (FeedbackFolder::FoldNow,
  // serving/feedback_folder.h). Errors other than FailedPrecondition (no model to fold into)
  // are logged; the users' next events (or the next model swap) fold them again.
  using FoldFn = std::function<absl::Status(std::span<const std::string> users)>;

  // `metrics` (may be null) receives the freshness lag; failed folds are logged to `log`.
  // Starts options.threads folder threads, each folding up to options.max_batch users per call
  // of `fold`.
  FoldQueue(FoldFn fold, Metrics* metrics, FoldQueueOptions options, Logger* log = StderrLog());
  // Stops after the folds in flight; folds still waiting are dropped (their events are durable:
  // a restarted server folds in everyone with events newer than its model before serving,
  // FeedbackFolder::RestoreFolds).
  ~FoldQueue();
  FoldQueue(const FoldQueue&) = delete;
  FoldQueue& operator=(const FoldQueue&) = delete;

  // `users` have new durable events, acknowledged at `acked`.
  void Enqueue(std::span<const std::string> users, Clock::time_point acked);

  // Returns once every event of `user` enqueued before the call is folded in: at once if none
  // waits, else after folding the user on this thread (also when a folder thread is folding
  // them: a read never waits for a folder thread, which may run at a lower priority).
  void EnsureFresh(const std::string& user);

  // Users waiting or being folded.
  int64_t backlog() const { return backlog_.load(std::memory_order_relaxed); }

 private:
  struct State {
    bool pending = false;     // events acknowledged that no fold has started on yet
    bool in_flight = false;   // a fold is running
    Clock::time_point acked;  // of the first pending acknowledgement
  };
  void Work();
  // Runs the fold of `users`, each pending and not in flight; `lock` is held on entry and on
  // return.
  void FoldLocked(std::span<const std::string> users, std::unique_lock<std::mutex>& lock);

  FoldFn fold_;
  Metrics* metrics_;
  Logger* log_;
  const FoldQueueOptions options_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  absl::flat_hash_map<std::string, State> users_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);  // may hold stale names
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> backlog_{0};  // users_.size(), readable without mu_
  std::vector<std::thread> threads_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_FOLD_QUEUE_H_
