// Backpressure on POST /v1/feedback (issue 22): past a bound on the fold backlog (users whose
// acknowledged events are not folded in yet) or on the event store's write queue, a feedback
// request is refused with 503 `overloaded` and Retry-After before anything of it is stored, so
// that a client is told to slow down instead of the backlog (memory, the restart's catch-up,
// every customer's freshness) growing without bound. Events already acknowledged are never
// dropped or delayed by a refusal: the check only decides whether a new request is taken.
#ifndef RECLOOP_SERVING_BACKPRESSURE_H_
#define RECLOOP_SERVING_BACKPRESSURE_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/status.h"

namespace recloop {

struct BackpressureOptions {
  // Users waiting for their fold or being folded (FoldQueue::backlog) at which feedback is
  // refused; 0 = no bound. The bound is checked per request, so an accepted request may still
  // add its batch's users: the backlog stays below this plus (requests in flight) x
  // (distinct users per batch). Default 100,000: a waiting user costs about 100 bytes (a hash
  // map entry and a queue slot, each holding the user ID; up to about 650 bytes with 256-byte
  // IDs), so about 10 MB at the bound (65 MB), and at the ~5,000 folds/s of one fold thread
  // (BENCHMARKS.md) about 20 s of folding before the last waiting user is folded in.
  int64_t max_fold_backlog = 100'000;
  // Writes handed to the event store's writer and not yet committed (EventStore::pending_writes)
  // at which feedback is refused; 0 = no bound. Default 1024, one full group commit
  // (EventStoreOptions::max_writes_per_commit): a request past it would wait for more than one
  // fsync behind others. Each write holds the thread that made it until it commits, so the
  // queue cannot exceed the threads writing (the server's blocking_threads, which run writes
  // off the I/O threads; erasures; the retrainer); the bound matters when set below them.
  int64_t max_write_queue = 1024;
  // The Retry-After of a refusal, whole seconds (>= 1).
  int retry_after_seconds = 1;
};

// InvalidArgument naming the bad field: a negative bound, retry_after_seconds outside [1, 3600].
absl::Status ValidateBackpressure(const BackpressureOptions& options);

// A bound that is reached.
struct Overload {
  std::string_view bound;  // "fold_backlog" or "write_queue" (the metric's label)
  int64_t depth = 0;       // the backlog or queue seen
  int64_t limit = 0;       // its bound
};

// The first bound that `fold_backlog` or `write_queue` reaches (depth >= bound, the fold
// backlog checked first), or nullopt when a request may be taken. Pure; thread-safe.
std::optional<Overload> CheckBackpressure(const BackpressureOptions& options, int64_t fold_backlog,
                                          int64_t write_queue);

}  // namespace recloop

#endif  // RECLOOP_SERVING_BACKPRESSURE_H_
