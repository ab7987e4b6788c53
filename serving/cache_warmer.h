// CacheWarmer: ranks users into the RankedCache (serving/ranked_cache.h) in the background
// whenever a new model or index goes live (the first load, a swap, new items indexed), so that
// customers' first requests after it are answered from the cache instead of each waiting for a
// search. The most active users (most training interactions) go first, into the room the cache
// has left: a warmed entry never evicts one (serving/ranked_cache.h PutIfRoom), so what requests
// brought in stays. Users already cached for the live model are skipped, and so are users whose
// list an extension's new items do not enter (carried forward, serving/ranked_cache.h
// CarryForward): after new items are indexed into a warmed snapshot, only the cached lists they
// change are ranked again (users without a current list wait for their next request). The
// thread runs at the lowest CPU priority (nice 19), so it takes only what the request threads
// leave; a pass that sees the model change again stops and starts over for the new one.
#ifndef RECLOOP_SERVING_CACHE_WARMER_H_
#define RECLOOP_SERVING_CACHE_WARMER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "base/logger.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"
#include "serving/ranked_cache.h"

namespace recloop {

struct CacheWarmerOptions {
  // HNSW beam of the warming searches (the server's --ef-search); 0 = the index's own.
  int ef_search = 0;
  // How often the live model is checked for a new ranking serial.
  std::chrono::milliseconds poll{100};
};

// Thread safety: the accessors may be called from any thread.
class CacheWarmer {
 public:
  // `live`, `folder` and `cache` must outlive the warmer. Starts its thread.
  CacheWarmer(LiveModel* live, const FeedbackFolder* folder, RankedCache* cache,
              CacheWarmerOptions options, Logger* log = StderrLog());
  ~CacheWarmer();  // stops the pass in flight
  CacheWarmer(const CacheWarmer&) = delete;
  CacheWarmer& operator=(const CacheWarmer&) = delete;

  // Users the current pass has still to rank (0 when the live model is warm).
  int64_t pending() const { return pending_.load(std::memory_order_relaxed); }
  // Users ranked into the cache by the warmer so far.
  int64_t warmed() const { return warmed_.load(std::memory_order_relaxed); }
  // Passes finished (each over one ranking serial).
  int64_t passes() const { return passes_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // Warms `snap`'s users; false if it stopped early (stop, or the model changed). `extension`:
  // snap extends the snapshot last warmed, so only the lists its new items enter are ranked.
  bool Pass(const ModelSnapshot& snap, bool extension);
  bool Stopping();

  LiveModel* live_;
  const FeedbackFolder* folder_;
  RankedCache* cache_;
  const CacheWarmerOptions options_;
  Logger* log_;
  std::atomic<int64_t> pending_{0}, warmed_{0}, passes_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started when the members above are ready
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_CACHE_WARMER_H_
