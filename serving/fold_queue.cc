#include "serving/fold_queue.h"

#include <algorithm>
#include <utility>

namespace recloop {

FoldQueue::FoldQueue(FoldFn fold, Metrics* metrics, int threads, Logger* log)
    : fold_(std::move(fold)), metrics_(metrics), log_(log) {
  for (int t = 0; t < std::max(1, threads); ++t) threads_.emplace_back([this] { Work(); });
}

FoldQueue::~FoldQueue() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void FoldQueue::Enqueue(std::span<const std::string> users, Clock::time_point acked) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& user : users) {
      auto [it, inserted] = users_.try_emplace(user);
      State& s = it->second;
      if (s.pending) continue;  // already waiting: one fold covers both
      s.pending = true;
      s.acked = acked;
      if (!s.in_flight) queue_.push_back(user);  // else requeued when the fold ends
    }
    backlog_.store(static_cast<int64_t>(users_.size()), std::memory_order_relaxed);
  }
  work_cv_.notify_all();
}

void FoldQueue::FoldLocked(const std::string& user, std::unique_lock<std::mutex>& lock) {
  State& s = users_[user];
  s.pending = false;
  s.in_flight = true;
  const Clock::time_point acked = s.acked;
  lock.unlock();
  if (absl::Status st = fold_(user); !st.ok() && !absl::IsFailedPrecondition(st)) {
    log_->Warning("fold-in of a user failed: %s", std::string(st.message()));
  }
  const double lag = std::chrono::duration<double>(Clock::now() - acked).count();
  if (metrics_ != nullptr) metrics_->ObserveFreshness(lag);
  lock.lock();
  auto it = users_.find(user);  // the reference may have moved with a rehash
  it->second.in_flight = false;
  if (it->second.pending) {
    queue_.push_back(user);  // events acknowledged while it ran
    work_cv_.notify_one();
  } else {
    users_.erase(it);
  }
  backlog_.store(static_cast<int64_t>(users_.size()), std::memory_order_relaxed);
  done_cv_.notify_all();
}

void FoldQueue::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const std::string user = std::move(queue_.front());
    queue_.pop_front();
    const auto it = users_.find(user);
    // Stale: folded meanwhile by a request (EnsureFresh), or running on another thread (which
    // requeues it when done).
    if (it == users_.end() || !it->second.pending || it->second.in_flight) continue;
    FoldLocked(user, lock);
  }
}

void FoldQueue::EnsureFresh(const std::string& user) {
  if (backlog_.load(std::memory_order_relaxed) == 0) return;  // the common case: no lock
  std::unique_lock<std::mutex> lock(mu_);
  // Bounded: a fold in flight covers what was pending when it began; one more covers the rest.
  for (int round = 0; round < 3; ++round) {
    const auto it = users_.find(user);
    if (it == users_.end()) return;
    if (it->second.in_flight) {
      const bool was_pending = it->second.pending;
      done_cv_.wait(lock, [&] {
        const auto now = users_.find(user);
        return now == users_.end() || !now->second.in_flight;
      });
      if (!was_pending) return;  // that fold saw every event acknowledged before this call
      continue;
    }
    if (!it->second.pending) return;
    FoldLocked(user, lock);
    return;
  }
}

}  // namespace recloop
