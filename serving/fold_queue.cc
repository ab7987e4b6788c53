#include "serving/fold_queue.h"

#include <algorithm>
#include <utility>

#include "base/thread_priority.h"

namespace recloop {

FoldQueue::FoldQueue(FoldFn fold, Metrics* metrics, FoldQueueOptions options, Logger* log)
    : fold_(std::move(fold)), metrics_(metrics), log_(log), options_(options) {
  int threads = options_.threads;
  if (threads <= 0) {
    threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 8);
  }
  for (int t = 0; t < threads; ++t)
    threads_.emplace_back([this] {
      SetThisThreadNice(options_.nice);
      Work();
    });
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
  work_cv_.notify_one();  // a thread that takes a batch wakes the next if more wait
}

void FoldQueue::FoldLocked(std::span<const std::string> users, std::unique_lock<std::mutex>& lock) {
  std::vector<Clock::time_point> acked(users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    State& s = users_[users[i]];
    s.pending = false;
    s.in_flight = true;
    acked[i] = s.acked;
  }
  lock.unlock();
  if (absl::Status st = fold_(users); !st.ok() && !absl::IsFailedPrecondition(st)) {
    log_->Warning("fold-in of %d user(s) failed: %s", static_cast<int>(users.size()),
                  std::string(st.message()));
  }
  const Clock::time_point now = Clock::now();
  if (metrics_ != nullptr) {
    for (const Clock::time_point t : acked) {
      metrics_->ObserveFreshness(std::chrono::duration<double>(now - t).count());
    }
  }
  lock.lock();
  bool requeued = false;
  for (const std::string& user : users) {
    auto it = users_.find(user);  // references may have moved with a rehash
    it->second.in_flight = false;
    if (it->second.pending) {
      queue_.push_back(user);  // events acknowledged while it ran
      requeued = true;
    } else {
      users_.erase(it);
    }
  }
  if (requeued) work_cv_.notify_one();
  backlog_.store(static_cast<int64_t>(users_.size()), std::memory_order_relaxed);
}

void FoldQueue::Work() {
  std::vector<std::string> batch;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    batch.clear();
    while (!queue_.empty() && static_cast<int>(batch.size()) < std::max(1, options_.max_batch)) {
      std::string user = std::move(queue_.front());
      queue_.pop_front();
      const auto it = users_.find(user);
      // Stale: folded meanwhile by a request (EnsureFresh), running on another thread (which
      // requeues it when done), or already in this batch.
      if (it == users_.end() || !it->second.pending || it->second.in_flight) continue;
      it->second.in_flight = true;  // taken: a second queue entry of the user is now stale
      batch.push_back(std::move(user));
    }
    if (batch.empty()) continue;
    // More waiting: another folder thread may take the next batch meanwhile.
    if (!queue_.empty()) work_cv_.notify_one();
    FoldLocked(batch, lock);
  }
}

void FoldQueue::EnsureFresh(const std::string& user) {
  if (backlog_.load(std::memory_order_relaxed) == 0) return;  // the common case: no lock
  std::unique_lock<std::mutex> lock(mu_);
  const auto it = users_.find(user);
  if (it == users_.end()) return;
  if (!it->second.in_flight) {
    if (it->second.pending) FoldLocked(std::span<const std::string>(&user, 1), lock);
    return;
  }
  // A folder thread is folding the user. It runs below the readers' priority (serve
  // --write-nice) and may be held up by the very reads that would wait for it, so this thread
  // folds the user again instead: its fold sees every event acknowledged before the call, and of
  // two folds of one user the overlay keeps the one that saw the later event (UserOverlay::Put).
  // The user stays in the queue's hands: if events came meanwhile, the folder requeues them.
  lock.unlock();
  if (absl::Status st = fold_(std::span<const std::string>(&user, 1));
      !st.ok() && !absl::IsFailedPrecondition(st)) {
    log_->Warning("fold-in of a user in flight failed: %s", std::string(st.message()));
  }
}

}  // namespace recloop
