// Backpressure on POST /v1/feedback (issue 22) over real sockets: with the folds held (an
// extension holds the folder's extension lock, as a new-item extension does) or the event
// store's writer held (another connection holds SQLite's write lock), a request past the bound
// is answered 503 overloaded with Retry-After and stores nothing, and every acknowledged event
// is stored exactly once once things move again. And the bound check itself.
#include "serving/backpressure.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/event_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using json = nlohmann::json;
using test::Client;
using test::Reply;
namespace http = boost::beast::http;

TEST(CheckBackpressure, RefusesAtTheBoundAndNamesIt) {
  BackpressureOptions o;
  o.max_fold_backlog = 3;
  o.max_write_queue = 2;
  EXPECT_FALSE(CheckBackpressure(o, 2, 1).has_value());
  const auto backlog = CheckBackpressure(o, 3, 0);
  ASSERT_TRUE(backlog.has_value());
  EXPECT_EQ(backlog->bound, "fold_backlog");
  EXPECT_EQ(backlog->depth, 3);
  EXPECT_EQ(backlog->limit, 3);
  const auto queue = CheckBackpressure(o, 0, 5);
  ASSERT_TRUE(queue.has_value());
  EXPECT_EQ(queue->bound, "write_queue");
  EXPECT_EQ(queue->depth, 5);
  EXPECT_EQ(queue->limit, 2);
  // Both reached: the fold backlog is named.
  EXPECT_EQ(CheckBackpressure(o, 4, 4)->bound, "fold_backlog");
  // 0 = no bound.
  o.max_fold_backlog = 0;
  o.max_write_queue = 0;
  EXPECT_FALSE(CheckBackpressure(o, 1'000'000'000, 1'000'000'000).has_value());
}

TEST(CheckBackpressure, ValidatesItsOptions) {
  EXPECT_TRUE(ValidateBackpressure(BackpressureOptions{}).ok());
  BackpressureOptions o;
  o.max_fold_backlog = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateBackpressure(o)));
  o = {};
  o.max_write_queue = -1;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateBackpressure(o)));
  o = {};
  o.retry_after_seconds = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateBackpressure(o)));
  ApiOptions api;
  api.backpressure.retry_after_seconds = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(Api::Validate(api)));
}

// A server over the planted store with an event store, its own folder (one fold thread) and
// the bounds a test sets in Bounds().
class BackpressureTest : public test::PlantedStoreServer {
 protected:
  virtual BackpressureOptions Bounds() const = 0;

  void SetUp() override {
    PlantedStoreServer::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    folder_ = std::make_unique<FeedbackFolder>(live_.get(), events_.get(), FeedbackOptions{},
                                               FoldQueueOptions{.threads = 1}, &metrics_);
    ApiOptions options;
    options.backpressure = Bounds();
    options.cors.allowed_origins = {"https://shop.example"};
    ASSERT_OK(Api::Validate(options));
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(),
                                             .metrics = &metrics_,
                                             .events = events_.get(),
                                             .folder = folder_.get()},
                                 options);
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  void TearDown() override {
    Release();
    PlantedStoreServer::TearDown();  // the server first: its handler uses the members below
    api_.reset();
    folder_.reset();
  }

  // Holds every fold: an extension of the live version (the same snapshot, no users) holds
  // the folder's extension lock exclusively until Release(), so a fold thread that picks a
  // user waits in FoldNow and the user stays in the backlog.
  void HoldFolds() {
    std::future<void> is_held = held_.get_future();
    holder_ = std::thread([this] {
      const absl::Status s = folder_->ActivateExtension(live_->Get(), {}, [this] {
        held_.set_value();
        release_future_.wait_for(std::chrono::seconds(30));  // bounded
      });
      EXPECT_TRUE(s.ok()) << s;
    });
    ASSERT_EQ(is_held.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  }
  void Release() {
    if (!holder_.joinable()) return;
    release_.set_value();
    holder_.join();
  }

  // One event of `user` with idempotency key `id`.
  static json OneEvent(const std::string& user, const std::string& id) {
    return {{"user", user}, {"item", "i1"}, {"type", "view"}, {"id", id}};
  }
  Reply Post(Client& c, const json& body) {
    return c.Send(http::verb::post, "/v1/feedback", body.dump());
  }
  // The ids of `user`'s stored events, in log order (each stored event once).
  std::vector<std::string> StoredIds(const std::string& user) {
    std::vector<std::string> ids;
    auto stored = events_->UserEvents(user);
    EXPECT_TRUE(stored.ok()) << stored.status();
    if (stored.ok()) {
      for (const StoredEvent& e : *stored) ids.push_back(e.event.id);
    }
    return ids;
  }
  // The value of metric line `series` (name and labels) in /metrics, or -1 if absent.
  double MetricValue(const std::string& series) {
    const std::string body = Client(port()).Get("/metrics").body;
    const std::string prefix = series + " ";
    const size_t at = body.find("\n" + prefix);
    if (at == std::string::npos) return -1;
    return std::stod(body.substr(at + 1 + prefix.size()));
  }
  // Expects `r` to be the documented refusal: 503, {"error":{"code":"overloaded",...}},
  // Retry-After 2 (the bound's configured seconds).
  static void ExpectOverloaded(const Reply& r, const std::string& bound_words) {
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(r.retry_after, "2");
    const json body = r.Json();
    ASSERT_TRUE(body.is_object() && body.contains("error") && body["error"].is_object() &&
                body["error"]["message"].is_string())
        << r.body;
    EXPECT_EQ(body["error"]["code"], "overloaded") << r.body;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(bound_words), std::string::npos)
        << r.body;
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<FeedbackFolder> folder_;
  std::unique_ptr<Api> api_;
  std::promise<void> held_;
  std::promise<void> release_;
  std::shared_future<void> release_future_ = release_.get_future().share();
  std::thread holder_;
};

class FeedbackBacklogBoundTest : public BackpressureTest {
 protected:
  BackpressureOptions Bounds() const override {
    return {.max_fold_backlog = 1, .max_write_queue = 0, .retry_after_seconds = 2};
  }
};

TEST_F(FeedbackBacklogBoundTest, PastTheBoundRefusesStoresNothingAndLosesNothingAcknowledged) {
  HoldFolds();
  if (HasFatalFailure()) return;
  Client c(port());
  Reply r = Post(c, json::array({OneEvent("a", "a-1"), OneEvent("a", "a-2")}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 2);
  // a's fold waits: the bound (1 user) is reached.
  EXPECT_EQ(folder_->backlog(), 1);

  r = Post(c, json::array({OneEvent("b", "b-1"), OneEvent("b", "b-2")}));
  ExpectOverloaded(r, "users waiting to be folded in: 1, bound 1");
  // An already waiting user is refused too: the bound is on taking requests.
  ExpectOverloaded(Post(c, json::array({OneEvent("a", "a-3")})), "folded in");
  // A browser may read Retry-After (CORS).
  const std::string body = json::array({OneEvent("c", "c-1")}).dump();
  r = c.SendRaw(
      "POST /v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Origin: https://shop.example\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body);
  ExpectOverloaded(r, "folded in");
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), "https://shop.example");
  EXPECT_NE(r.Header("Access-Control-Expose-Headers").find("Retry-After"), std::string::npos);

  // Nothing of the refused requests is stored; the acknowledged ones are, once.
  EXPECT_EQ(StoredIds("a"), (std::vector<std::string>{"a-1", "a-2"}));
  EXPECT_TRUE(StoredIds("b").empty());
  EXPECT_TRUE(StoredIds("c").empty());
  EXPECT_EQ(MetricValue("recloop_feedback_fold_backlog"), 1);
  EXPECT_EQ(MetricValue("recloop_feedback_rejected_backpressure_total{bound=\"fold_backlog\"}"), 3);
  EXPECT_EQ(MetricValue("recloop_feedback_rejected_backpressure_total{bound=\"write_queue\"}"), 0);
  EXPECT_EQ(MetricValue("recloop_feedback_folds_total"), 0);
  EXPECT_EQ(MetricValue("recloop_event_store_write_queue"), 0);

  // Released: a's fold runs, the backlog drains, and the retried request is taken.
  Release();
  for (int i = 0; i < 1000 && folder_->backlog() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(folder_->backlog(), 0);
  EXPECT_EQ(MetricValue("recloop_feedback_folds_total"), 1);
  r = Post(c, json::array({OneEvent("b", "b-1"), OneEvent("b", "b-2")}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["accepted"], 2);
  EXPECT_EQ(r.Json()["duplicates"], 0);  // the refusal stored nothing to be a duplicate of
  EXPECT_EQ(StoredIds("a"), (std::vector<std::string>{"a-1", "a-2"}));
  EXPECT_EQ(StoredIds("b"), (std::vector<std::string>{"b-1", "b-2"}));
  r = c.Get("/v1/users/b/feedback");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["events"].size(), 2u);
  ASSERT_OK_AND_ASSIGN(const int64_t count, events_->Count());
  EXPECT_EQ(count, 4);
}

class FeedbackConcurrentBoundTest : public BackpressureTest {
 protected:
  static constexpr int kBound = 5;
  BackpressureOptions Bounds() const override {
    return {.max_fold_backlog = kBound, .max_write_queue = 0, .retry_after_seconds = 2};
  }
};

// Four clients at once, each posting 10 batches of a user of its own while folds are held:
// exactly the acknowledged batches are stored, each once, and the bound holds up to the
// requests checked at once (writes run on the server's blocking threads: up to the 4 clients).
TEST_F(FeedbackConcurrentBoundTest, ExactlyTheAcknowledgedBatchesAreStored) {
  HoldFolds();
  if (HasFatalFailure()) return;
  constexpr int kClients = 4;
  constexpr int kPosts = 10;
  std::mutex mu;
  std::set<std::string> acked;
  std::set<std::string> refused;
  std::atomic<int> other{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Client c(port());
      for (int k = 0; k < kPosts; ++k) {
        const std::string user = "u" + std::to_string(t) + "-" + std::to_string(k);
        const Reply r =
            Post(c, json::array({OneEvent(user, user + "/1"), OneEvent(user, user + "/2")}));
        std::lock_guard<std::mutex> lock(mu);
        if (r.status == 200) {
          acked.insert(user);
        } else if (r.status == 503 && r.retry_after == "2" &&
                   r.Json()["error"]["code"] == "overloaded") {
          refused.insert(user);
        } else {
          ++other;
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(acked.size() + refused.size(), static_cast<size_t>(kClients * kPosts));
  EXPECT_GE(acked.size(), static_cast<size_t>(kBound));
  EXPECT_LE(acked.size(), static_cast<size_t>(kBound + kClients - 1));  // checked at once
  EXPECT_EQ(folder_->backlog(), static_cast<int64_t>(acked.size()));
  EXPECT_EQ(MetricValue("recloop_feedback_rejected_backpressure_total{bound=\"fold_backlog\"}"),
            static_cast<double>(refused.size()));

  Release();
  for (int i = 0; i < 1000 && folder_->backlog() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(folder_->backlog(), 0);
  for (const std::string& user : acked) {
    EXPECT_EQ(StoredIds(user), (std::vector<std::string>{user + "/1", user + "/2"})) << user;
  }
  for (const std::string& user : refused) EXPECT_TRUE(StoredIds(user).empty()) << user;
  ASSERT_OK_AND_ASSIGN(const int64_t count, events_->Count());
  EXPECT_EQ(count, static_cast<int64_t>(2 * acked.size()));
}

class FeedbackWriteQueueBoundTest : public BackpressureTest {
 protected:
  BackpressureOptions Bounds() const override {
    return {.max_fold_backlog = 0, .max_write_queue = 1, .retry_after_seconds = 2};
  }
};

// With another connection holding SQLite's write lock, a write waits in the writer (within
// its 10 s busy timeout): the queue holds 1, and the next request is refused.
TEST_F(FeedbackWriteQueueBoundTest, PastTheBoundRefusesAndTheWaitingWriteIsStoredOnce) {
  sqlite3* locker = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("events.db").c_str(), &locker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(locker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::promise<Reply> first;
  std::future<Reply> first_reply = first.get_future();
  std::thread writer([&] {
    Client c(port());
    first.set_value(Post(c, json::array({OneEvent("w", "w-1"), OneEvent("w", "w-2")})));
  });
  for (int i = 0; i < 1000 && events_->pending_writes() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(events_->pending_writes(), 1);
  EXPECT_EQ(MetricValue("recloop_event_store_write_queue"), 1);
  Client c(port());
  ExpectOverloaded(Post(c, json::array({OneEvent("x", "x-1")})),
                   "writes waiting for the event store: 1, bound 1");
  EXPECT_EQ(MetricValue("recloop_feedback_rejected_backpressure_total{bound=\"write_queue\"}"), 1);

  // Released (before any assertion that could return: the writer thread must be joined).
  EXPECT_EQ(sqlite3_exec(locker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(locker);
  writer.join();  // bounded: the client's 10 s timeout
  ASSERT_EQ(first_reply.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  const Reply r = first_reply.get();
  ASSERT_EQ(r.status, 200) << r.body;  // acknowledged: not refused by the bound it filled
  EXPECT_EQ(r.Json()["accepted"], 2);
  EXPECT_EQ(events_->pending_writes(), 0);
  EXPECT_EQ(StoredIds("w"), (std::vector<std::string>{"w-1", "w-2"}));
  EXPECT_TRUE(StoredIds("x").empty());
  ASSERT_EQ(Post(c, json::array({OneEvent("x", "x-1")})).status, 200);
  EXPECT_EQ(StoredIds("x"), (std::vector<std::string>{"x-1"}));
}

}  // namespace
}  // namespace recloop
