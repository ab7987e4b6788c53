#include "serving/replica_follower.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace recloop {

ReplicaFollower::ReplicaFollower(EventStore* events, FeedbackFolder* folder,
                                 ReplicaFollowerOptions options, std::function<void()> on_pass,
                                 Logger* log)
    : events_(events),
      folder_(folder),
      options_(options),
      on_pass_(std::move(on_pass)),
      log_(log),
      cursor_(options.start_seq) {
  thread_ = std::thread([this] { Loop(); });
}

ReplicaFollower::~ReplicaFollower() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool ReplicaFollower::WaitFor(int64_t seq, int timeout_ms) {
  if (cursor() >= seq) return true;
  std::unique_lock<std::mutex> lock(mu_);
  asked_ = true;
  cv_.notify_all();
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return stop_ || cursor() >= seq;
  }) && cursor() >= seq;
}

absl::Status ReplicaFollower::Pass() {
  const int64_t from = cursor();
  std::set<std::string> users;
  int64_t next = from;
  // Erasures first: every event with a smaller seq than an erasure seen here committed before
  // it, so the read of events below sees them all.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> erased = events_->Erasures(from + 1);
  if (!erased.ok()) return erased.status();
  for (const auto& [user, seq] : *erased) {
    users.insert(user);
    next = std::max(next, seq);
  }
  int64_t read = 0;
  bool truncated = false;
  int64_t last_event = from;
  absl::Status s = events_->ForEach(from, [&](const StoredEvent& e) {
    users.insert(e.event.user);
    last_event = e.seq;
    if (++read >= options_.max_events) {
      truncated = true;
      return false;
    }
    return true;
  });
  if (!s.ok()) return s;
  // A truncated read ends at its last event; erasures after it are read again next pass (an
  // erasure folded twice ends the same).
  next = truncated ? last_event : std::max(next, last_event);
  if (!users.empty()) {
    const std::vector<std::string> list(users.begin(), users.end());
    folder_->Enqueue(list);
  }
  cursor_.store(next, std::memory_order_release);
  return absl::OkStatus();
}

void ReplicaFollower::Loop() {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      asked_ = false;
    }
    if (absl::Status s = Pass(); !s.ok()) {
      if (failed_.fetch_add(1, std::memory_order_relaxed) % 20 == 0) {
        log_->Warning("following the event store: %s", s.ToString());
      }
    }
    if (on_pass_) on_pass_();
    cv_.notify_all();  // WaitFor callers
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (asked_) continue;
    }
    // Sleeps on the store's notifications; a WaitFor caller does not wait for the poll, as
    // WaitFor asks for a pass and the next notification or poll ends this one soon anyway.
    events_->WaitForWrites(cursor(), options_.poll_ms);
  }
}

}  // namespace recloop
