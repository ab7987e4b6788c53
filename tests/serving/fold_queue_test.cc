// FoldQueue: folds coalesce, requests see their own acknowledged feedback, nothing is dropped.
#include "serving/fold_queue.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace recloop {
namespace {

using Clock = FoldQueue::Clock;

// A fold function that counts folds per user and can be held at a gate.
struct Recorder {
  std::mutex mu;
  std::map<std::string, int> folds;
  int calls = 0;  // calls of the fold function
  std::atomic<bool> hold{false};
  std::atomic<int> running{0};
  std::thread::id exempt;  // a thread the gate lets through

  FoldQueue::FoldFn Fn() {
    return [this](std::span<const std::string> users) {
      ++running;
      for (int i = 0; i < 5000 && hold.load() && std::this_thread::get_id() != exempt;
           ++i) {  // bounded: at most 5 s
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ++calls;
        for (const std::string& user : users) ++folds[user];
      }
      --running;
      return absl::OkStatus();
    };
  }
  int Folds(const std::string& user) {
    std::lock_guard<std::mutex> lock(mu);
    return folds[user];
  }
};

void WaitDrained(const FoldQueue& q) {
  for (int i = 0; i < 5000 && q.backlog() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(FoldQueue, ManyBatchesOfOneUserAreFoldedFewTimesAndNoneIsLost) {
  Recorder rec;
  Metrics metrics;
  FoldQueue q(rec.Fn(), &metrics, {.threads = 1});
  rec.hold = true;
  const std::vector<std::string> blocker = {"blocker"};
  q.Enqueue(blocker, Clock::now());
  for (int i = 0; i < 200 && rec.running.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::vector<std::string> users = {"a", "b"};
  for (int i = 0; i < 100; ++i) q.Enqueue(users, Clock::now());
  EXPECT_EQ(q.backlog(), 3);
  rec.hold = false;
  WaitDrained(q);
  EXPECT_EQ(q.backlog(), 0);
  EXPECT_EQ(rec.Folds("a"), 1);  // 100 batches, one fold
  EXPECT_EQ(rec.Folds("b"), 1);
  EXPECT_EQ(rec.Folds("blocker"), 1);
  EXPECT_NE(metrics.Render({}).find("recloop_feedback_freshness_seconds_count 3"),
            std::string::npos);
}

// A backlog is folded in batches: one call of the fold function per batch, not per user.
TEST(FoldQueue, AWaitingBacklogIsFoldedInBatchesOfAtMostMaxBatch) {
  Recorder rec;
  Metrics metrics;
  FoldQueue q(rec.Fn(), &metrics, {.threads = 1, .max_batch = 16});
  rec.hold = true;
  const std::vector<std::string> blocker = {"blocker"};
  q.Enqueue(blocker, Clock::now());
  for (int i = 0; i < 200 && rec.running.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::vector<std::string> users;
  for (int u = 0; u < 100; ++u) users.push_back("u" + std::to_string(u));
  q.Enqueue(users, Clock::now());
  q.Enqueue(users, Clock::now());  // coalesced: still one fold each
  EXPECT_EQ(q.backlog(), 101);
  rec.hold = false;
  WaitDrained(q);
  EXPECT_EQ(q.backlog(), 0);
  for (const std::string& u : users) EXPECT_EQ(rec.Folds(u), 1) << u;
  std::lock_guard<std::mutex> lock(rec.mu);
  EXPECT_EQ(rec.calls, 1 + 7);  // the blocker, then ceil(100 / 16) batches
  EXPECT_NE(metrics.Render({}).find("recloop_feedback_freshness_seconds_count 101"),
            std::string::npos);
}

// A lag of seconds (a backlog that grew) lands in a bucket of its own, not only past the last.
TEST(FoldQueue, FreshnessBucketsReachAMinute) {
  Metrics metrics;
  metrics.ObserveFreshness(0.0005);
  metrics.ObserveFreshness(4.0);
  metrics.ObserveFreshness(120.0);
  const std::string text = metrics.Render({});
  EXPECT_NE(text.find("recloop_feedback_freshness_seconds_bucket{le=\"0.001\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("recloop_feedback_freshness_seconds_bucket{le=\"2.5\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("recloop_feedback_freshness_seconds_bucket{le=\"5\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("recloop_feedback_freshness_seconds_bucket{le=\"60\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("recloop_feedback_freshness_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
}

TEST(FoldQueue, EnsureFreshFoldsAWaitingUserOnTheCallersThread) {
  Recorder rec;
  FoldQueue q(rec.Fn(), nullptr, {.threads = 1});
  rec.hold = true;
  const std::vector<std::string> blocker = {"blocker"};
  q.Enqueue(blocker, Clock::now());  // occupies the only folder thread
  for (int i = 0; i < 200 && rec.running.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::vector<std::string> user = {"reader"};
  q.Enqueue(user, Clock::now());
  EXPECT_EQ(rec.Folds("reader"), 0);
  rec.hold = false;  // lets our own inline fold through too
  q.EnsureFresh("reader");
  EXPECT_EQ(rec.Folds("reader"), 1);
  q.EnsureFresh("nobody");  // nothing waiting: returns at once
  WaitDrained(q);
  EXPECT_EQ(rec.Folds("reader"), 1);  // the stale queue entry is not folded again
}

// A read of a user whose fold is in flight folds them again on its own thread instead of waiting:
// the folder thread may run below the readers' priority (serve --write-nice) and be held up by
// the very reads that would wait for it (one run measured reads stalled up to 76 ms).
TEST(FoldQueue, EnsureFreshFoldsAUserInFlightAgainInsteadOfWaiting) {
  Recorder rec;
  rec.exempt = std::this_thread::get_id();
  FoldQueue q(rec.Fn(), nullptr, {.threads = 1});
  rec.hold = true;
  const std::vector<std::string> user = {"u"};
  q.Enqueue(user, Clock::now());
  for (int i = 0; i < 200 && rec.running.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(rec.running.load(), 1);
  q.EnsureFresh("u");  // returns while the folder thread's fold is still held
  EXPECT_EQ(rec.Folds("u"), 1);
  EXPECT_EQ(rec.running.load(), 1);
  rec.hold = false;
  WaitDrained(q);
  EXPECT_EQ(rec.Folds("u"), 2);
  EXPECT_EQ(q.backlog(), 0);
}

TEST(FoldQueue, ConcurrentProducersAndReadersDropNothing) {
  Recorder rec;
  FoldQueue q(rec.Fn(), nullptr, {.threads = 2});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        const std::vector<std::string> users = {"u" + std::to_string((t * 7 + i) % 50)};
        q.Enqueue(users, Clock::now());
        if (i % 3 == 0) q.EnsureFresh(users[0]);
      }
    });
  }
  for (auto& t : threads) t.join();
  WaitDrained(q);
  EXPECT_EQ(q.backlog(), 0);
  int total = 0;
  for (int u = 0; u < 50; ++u) {
    const int n = rec.Folds("u" + std::to_string(u));
    EXPECT_GE(n, 1) << u;
    total += n;
  }
  EXPECT_LE(total, 2000);
}

}  // namespace
}  // namespace recloop
