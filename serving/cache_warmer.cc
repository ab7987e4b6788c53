#include "serving/cache_warmer.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "base/thread_priority.h"

namespace recloop {

CacheWarmer::CacheWarmer(LiveModel* live, const FeedbackFolder* folder, RankedCache* cache,
                         CacheWarmerOptions options, Logger* log)
    : live_(live), folder_(folder), cache_(cache), options_(options), log_(log) {
  thread_ = std::thread([this] { Run(); });
}

CacheWarmer::~CacheWarmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool CacheWarmer::Stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stop_;
}

void CacheWarmer::Run() {
  // The lowest priority for this thread only (Linux: nice is per thread), so that requests
  // always come first.
  SetThisThreadNice(19);
  uint64_t warm_serial = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, options_.poll, [this] { return stop_; });
      if (stop_) return;
    }
    if (!cache_->enabled()) continue;
    const auto snap = live_->Get();
    if (snap == nullptr || snap->ranking_serial == warm_serial) continue;
    // An extension of the snapshot last warmed: only the lists its new items change.
    const bool extension = std::any_of(
        snap->extends.begin(), snap->extends.end(),
        [warm_serial](const ModelSnapshot::EarlierRanking& e) { return e.serial == warm_serial; });
    if (Pass(*snap, extension)) {
      warm_serial = snap->ranking_serial;
      passes_.fetch_add(1, std::memory_order_relaxed);
      cache_->CountWarmPass();
    }
  }
}

bool CacheWarmer::Pass(const ModelSnapshot& snap, bool extension) {
  const FactorModel& model = *snap.model;
  if (!model.has_factors()) return true;  // popularity: nothing personal to rank
  // The most active users first: they are the likeliest to come back.
  const int32_t users = static_cast<int32_t>(model.num_users());
  std::vector<int32_t> order(static_cast<size_t>(users));
  std::iota(order.begin(), order.end(), 0);
  const auto activity = [&model](int32_t u) {
    return u < model.seen.rows() ? model.seen.RowSize(u) : int64_t{0};
  };
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const int64_t x = activity(a), y = activity(b);
    return x != y ? x > y : a < b;
  });
  pending_.store(static_cast<int64_t>(order.size()), std::memory_order_relaxed);
  cache_->SetWarmPending(pending());
  RecommendOptions request;
  request.ef_search = options_.ef_search;
  for (size_t j = 0; j < order.size(); ++j) {
    if (j % 256 == 0) {
      if (Stopping()) return false;
      const auto live = live_->Get();
      if (live == nullptr || live->ranking_serial != snap.ranking_serial) return false;
    }
    const std::string& user = model.users.External(order[j]);
    const auto folded = folder_->overlay().Find(user, snap.version());
    // After an extension, a user without a list, or whose list is stale from a newer fold, is
    // ranked by their next request, as between passes: warming them now would be lost work for
    // customers whose feedback keeps coming.
    const auto cached = extension ? cache_->Peek(user) : nullptr;
    const bool skip =
        extension && (cached == nullptr || cached->fold_serial != (folded ? folded->serial : 0));
    if (!skip && !HoldsRanked(cache_, snap, user, order[j], folded.get()) &&
        cache_->HasRoom(user, snap.ranking_serial)) {
      auto list = RankForCache(snap, order[j], folded.get(), request, cache_->candidates());
      if (!list.ok()) {
        log_->Error("cache warmer: %s", list.status().ToString());
        pending_.store(0, std::memory_order_relaxed);
        cache_->SetWarmPending(0);
        return true;  // not again for this model: the error would repeat
      }
      if (cache_->PutIfRoom(user, *std::move(list)))
        warmed_.fetch_add(1, std::memory_order_relaxed);
    }
    pending_.fetch_sub(1, std::memory_order_relaxed);
    if (j % 256 == 255 || j + 1 == order.size()) cache_->SetWarmPending(pending());
  }
  pending_.store(0, std::memory_order_relaxed);
  cache_->SetWarmPending(0);
  return true;
}

}  // namespace recloop
