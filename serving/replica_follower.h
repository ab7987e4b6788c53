// ReplicaFollower: keeps one replica of a shared event store (EventStore::shared, PostgreSQL)
// up to date with what the other replicas acknowledge.
//
// Its thread follows the log by seq: it sleeps on the store's notifications (LISTEN/NOTIFY,
// EventStore::WaitForWrites, at most `poll_ms`), then reads the erasures and the events after
// its cursor, hands their users to the fold queue (FeedbackFolder::Enqueue: a user erased
// elsewhere is folded from their remaining history and erasure, as on the replica that erased
// them) and moves the cursor past them. Seqs grow in commit order on such a store, so nothing
// is missed, and a user folded twice (their own replica's fold and this one) ends the same. The
// cursor starts where the restart catch-up (FeedbackFolder::RestoreFolds) ended.
//
// Each pass also runs `on_pass` (the retrainer's FollowCurrent: the shared models directory's
// `current` version swapped in; serving/retrainer.h).
//
// Read-your-writes across replicas: a client passes the `seq` a write answered as `min_seq`, and
// the request waits (WaitFor) until this replica's cursor reaches it (docs/scaling.md).
#ifndef RECLOOP_SERVING_REPLICA_FOLLOWER_H_
#define RECLOOP_SERVING_REPLICA_FOLLOWER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/logger.h"
#include "data/event_store.h"
#include "serving/feedback_folder.h"

namespace recloop {

struct ReplicaFollowerOptions {
  int64_t start_seq = 0;   // events up to this seq are folded in already
  int poll_ms = 100;       // the longest sleep without a notification
  int max_events = 20000;  // read per pass
};

// Thread safety: every public method may be called from any thread.
class ReplicaFollower {
 public:
  // `events` and `folder` must outlive the follower. Starts the thread.
  ReplicaFollower(EventStore* events, FeedbackFolder* folder, ReplicaFollowerOptions options,
                  std::function<void()> on_pass = nullptr, Logger* log = StderrLog());
  ~ReplicaFollower();  // stops the thread
  ReplicaFollower(const ReplicaFollower&) = delete;
  ReplicaFollower& operator=(const ReplicaFollower&) = delete;

  // Every event and erasure with seq <= this is handed to the fold queue.
  int64_t cursor() const { return cursor_.load(std::memory_order_acquire); }
  // Returns true once cursor() >= seq, asking for a pass at once; false after `timeout_ms`.
  bool WaitFor(int64_t seq, int timeout_ms);
  // Passes that failed (the store unreachable), for /metrics.
  int64_t failed_passes() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void Loop();
  // One pass: erasures, then events after the cursor. Errors: the store's.
  absl::Status Pass();

  EventStore* events_;
  FeedbackFolder* folder_;
  const ReplicaFollowerOptions options_;
  std::function<void()> on_pass_;
  Logger* log_;
  std::atomic<int64_t> cursor_;
  std::atomic<int64_t> failed_{0};

  std::mutex mu_;
  std::condition_variable cv_;  // cursor moved, or a pass was asked for
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool asked_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_REPLICA_FOLLOWER_H_
