// The PostgreSQL event store (data/pg_event_store.h) against a real PostgreSQL 15 started by the
// test (tests/pg_test_server.h): the guarantees it shares with the SQLite store (acknowledged
// means committed, a retried id counts once, erasures recorded, export), and what replicas rely
// on (seqs in commit order across stores, notifications, the advisory lock, Unavailable while
// the database is down and recovery after).
#include "data/pg_event_store.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "tests/pg_test_server.h"

namespace recloop {
namespace {

Event Ev(std::string user, std::string item, std::string type, std::string id = "",
         std::optional<float> value = std::nullopt, int64_t ts = 1'700'000'000) {
  Event e;
  e.user = std::move(user);
  e.item = std::move(item);
  e.type = std::move(type);
  e.id = std::move(id);
  e.value = value;
  e.timestamp = ts;
  return e;
}

class PgEventStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = test::PgTestServer::Start();
    if (!pg.ok()) {
      error_ = new std::string(pg.status().ToString());
      return;
    }
    pg_ = pg->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    delete error_;
    pg_ = nullptr;
    error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(error_, nullptr) << "PostgreSQL did not start: " << *error_;
    const std::string db = absl::StrCat("s", ++databases_);
    ASSERT_OK(pg_->CreateDatabase(db));
    url_ = pg_->Url(db);
  }
  std::unique_ptr<EventStore> OpenStore() {
    auto store = EventStore::Open({url_});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  static test::PgTestServer* pg_;
  static std::string* error_;
  static int databases_;
  std::string url_;
};

test::PgTestServer* PgEventStoreTest::pg_ = nullptr;
std::string* PgEventStoreTest::error_ = nullptr;
int PgEventStoreTest::databases_ = 0;

TEST(PgUrl, IsRecognisedAndRedacted) {
  EXPECT_TRUE(IsPostgresUrl("postgresql://u@h/db"));
  EXPECT_TRUE(IsPostgresUrl("postgres://h/db"));
  EXPECT_FALSE(IsPostgresUrl("/var/lib/recloop/events.db"));
  EXPECT_EQ(RedactPostgresUrl("postgresql://app:s3cret@db:5432/ev"),
            "postgresql://app:***@db:5432/ev");
  EXPECT_EQ(RedactPostgresUrl("postgresql://app@db/ev"), "postgresql://app@db/ev");
}

TEST_F(PgEventStoreTest, AppendsInOrderAndCountsARetriedIdOnce) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->shared());
  const std::vector<Event> batch = {Ev("u1", "a", "view", "id-1"),
                                    Ev("u1", "b", "rating", "id-2", 4.5f),
                                    Ev("u2", "a", "purchase")};
  ASSERT_OK_AND_ASSIGN(AppendResult first, store->Append(batch));
  EXPECT_EQ(first.stored, 3);
  EXPECT_EQ(first.duplicates, 0);
  EXPECT_EQ(first.last_seq, 3);
  // The client retries the first two after a lost answer: nothing doubles.
  ASSERT_OK_AND_ASSIGN(AppendResult retry, store->Append(std::span(batch).first(2)));
  EXPECT_EQ(retry.stored, 0);
  EXPECT_EQ(retry.duplicates, 2);
  // The same id twice in one batch counts once too.
  ASSERT_OK_AND_ASSIGN(AppendResult twice,
                       store->Append(std::vector<Event>{Ev("u3", "c", "click", "id-9"),
                                                        Ev("u3", "c", "click", "id-9")}));
  EXPECT_EQ(twice.stored, 1);
  EXPECT_EQ(twice.duplicates, 1);
  ASSERT_OK_AND_ASSIGN(int64_t count, store->Count());
  EXPECT_EQ(count, 4);
  ASSERT_OK_AND_ASSIGN(std::vector<StoredEvent> u1, store->UserEvents("u1", 0, 0));
  ASSERT_EQ(u1.size(), 2u);
  EXPECT_EQ(u1[0].event.item, "a");
  EXPECT_FALSE(u1[0].event.value.has_value());
  EXPECT_EQ(u1[1].event.item, "b");
  EXPECT_FLOAT_EQ(*u1[1].event.value, 4.5f);
  EXPECT_EQ(u1[1].event.id, "id-2");
  EXPECT_EQ(u1[1].event.timestamp, 1'700'000'000);
  ASSERT_OK_AND_ASSIGN(std::vector<StoredEvent> latest, store->UserEvents("u1", 1, 0));
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0].event.item, "b");
  // A bad event is refused whole, naming it; nothing of its batch is stored.
  auto bad = store->Append(std::vector<Event>{Ev("u4", "d", "view"), Ev("u,4", "d", "view")});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_EQ(*store->Count(), 4);
  // Reopened (a restarted server): the same store, the same id.
  const std::string id = store->id();
  store.reset();
  store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->id(), id);
  EXPECT_EQ(*store->LastSeq(), 4);
}

TEST_F(PgEventStoreTest, AnErasureDeletesTheUsersEventsAndTakesASeqOfItsOwn) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Append(std::vector<Event>{Ev("gone", "a", "view"), Ev("stays", "a", "view"),
                                             Ev("gone", "b", "click")}));
  ASSERT_OK_AND_ASSIGN(int64_t erased, store->DeleteUser("gone"));
  EXPECT_EQ(erased, 2);
  EXPECT_EQ(*store->ErasedAt("gone"), 4);
  EXPECT_EQ(*store->ErasedAt("stays"), -1);
  EXPECT_EQ(*store->LastSeq(), 4);
  EXPECT_EQ(*store->Count(), 1);
  ASSERT_OK_AND_ASSIGN(auto after3, store->Erasures(4));
  ASSERT_EQ(after3.size(), 1u);
  EXPECT_EQ(after3[0], std::make_pair(std::string("gone"), int64_t{4}));
  EXPECT_TRUE(store->Erasures(5)->empty());
  ASSERT_OK_AND_ASSIGN(auto histories,
                       store->Histories(std::vector<std::string>{"gone", "stays"}, 0));
  EXPECT_TRUE(histories[0].events.empty());
  EXPECT_EQ(histories[0].erased_at, 4);
  ASSERT_EQ(histories[1].events.size(), 1u);
  EXPECT_EQ(histories[1].erased_at, -1);
}

TEST_F(PgEventStoreTest, ExportsTheCsvTrainReadsAndImpressions) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Append(
      std::vector<Event>{Ev("u1", "a", "view"), Ev("u2", "b", "rating", "", 3.0f, 1'700'000'100)}));
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(int64_t rows, store->ExportCsv(dir.File("events.csv")));
  EXPECT_EQ(rows, 2);
  std::ifstream in(dir.File("events.csv"));
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(),
            "user,item,type,value,timestamp\nu1,a,view,,1700000000\nu2,b,rating,3,1700000100\n");
  ImpressionRecord shown{"rec-1", "u1", "recommendations",    "v000001",
                         "",      1234, "[[\"a\",\"model\"]]"};
  AttributionRecord credited{"rec-1", "u1", "a", "purchase", 1, "v000001", "", 1300};
  ASSERT_OK(store->AppendImpressions(std::span(&shown, 1), std::span(&credited, 1)));
  std::vector<ImpressionRecord> impressions;
  ASSERT_OK(store->ForEachImpression([&](const ImpressionRecord& r) {
    impressions.push_back(r);
    return true;
  }));
  ASSERT_EQ(impressions.size(), 1u);
  EXPECT_EQ(impressions[0].items, shown.items);
  EXPECT_EQ(impressions[0].at_ms, 1234);
  std::vector<AttributionRecord> attributions;
  ASSERT_OK(store->ForEachAttribution([&](const AttributionRecord& r) {
    attributions.push_back(r);
    return true;
  }));
  ASSERT_EQ(attributions.size(), 1u);
  EXPECT_EQ(attributions[0].position, 1);
  EXPECT_EQ(attributions[0].type, "purchase");
}

// What replicas rely on: two stores (two servers) writing at once, and a third reading the log
// by seq meanwhile, never sees a smaller seq appear after a larger one.
TEST_F(PgEventStoreTest, SeqsFollowCommitOrderAcrossServers) {
  auto a = OpenStore();
  auto b = OpenStore();
  auto reader = OpenStore();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(reader, nullptr);
  constexpr int kThreads = 4, kBatches = 40, kBatch = 5;
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      EventStore* store = t % 2 ? a.get() : b.get();
      for (int i = 0; i < kBatches; ++i) {
        std::vector<Event> batch;
        for (int j = 0; j < kBatch; ++j) {
          batch.push_back(Ev(absl::StrCat("u", t), absl::StrCat("i", j), "view",
                             absl::StrCat(t, "-", i, "-", j)));
        }
        EXPECT_OK(store->Append(batch));
      }
    });
  }
  std::set<std::string> followed;
  int64_t cursor = 0;
  int64_t passes = 0;
  auto pass = [&] {
    ++passes;
    return reader->ForEach(cursor, [&](const StoredEvent& e) {
      EXPECT_GT(e.seq, cursor);
      cursor = e.seq;
      EXPECT_TRUE(followed.insert(e.event.id).second) << "seen twice: " << e.event.id;
      return true;
    });
  };
  std::thread follower([&] {
    while (!done) EXPECT_OK(pass());
  });
  for (std::thread& w : writers) w.join();
  done = true;
  follower.join();
  ASSERT_OK(pass());  // the rest
  EXPECT_EQ(followed.size(), static_cast<size_t>(kThreads * kBatches * kBatch));
  EXPECT_EQ(*reader->Count(), kThreads * kBatches * kBatch);
  EXPECT_GT(passes, 2);
}

TEST_F(PgEventStoreTest, AWriteOnOneServerWakesAnotherWaitingForWrites) {
  auto a = OpenStore();
  auto b = OpenStore();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Nothing new: the wait ends at its timeout, not woken.
  EXPECT_FALSE(b->WaitForWrites(0, 50));
  std::atomic<bool> woken{false};
  std::thread waiter([&] { woken = b->WaitForWrites(0, 30'000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_OK(a->Append(std::vector<Event>{Ev("u", "i", "view")}));
  waiter.join();  // bounded by the 30 s timeout
  EXPECT_TRUE(woken);
  // Something newer than the caller's seq: no wait at all.
  EXPECT_TRUE(b->WaitForWrites(0, 30'000));
}

TEST_F(PgEventStoreTest, TheRetrainLockIsHeldByOneServerAtATime) {
  auto a = OpenStore();
  auto b = OpenStore();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreLock> held, a->TryLock("retrain"));
  ASSERT_NE(held, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreLock> refused, b->TryLock("retrain"));
  EXPECT_EQ(refused, nullptr);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreLock> other, b->TryLock("another"));
  EXPECT_NE(other, nullptr);
  held.reset();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<StoreLock> now, b->TryLock("retrain"));
  EXPECT_NE(now, nullptr);
}

TEST_F(PgEventStoreTest, IsUnavailableWhileTheDatabaseIsDownAndRecoversAfter) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Append(std::vector<Event>{Ev("u", "a", "view", "before")}));
  ASSERT_OK(pg_->Stop());
  auto down = store->Append(std::vector<Event>{Ev("u", "b", "view", "during")});
  EXPECT_TRUE(absl::IsUnavailable(down.status())) << down.status();
  EXPECT_TRUE(absl::IsUnavailable(store->Count().status()));
  ASSERT_OK(pg_->Restart());
  // The next calls reconnect; a retried write counts once.
  ASSERT_OK_AND_ASSIGN(AppendResult retried,
                       store->Append(std::vector<Event>{Ev("u", "b", "view", "during")}));
  EXPECT_EQ(retried.stored + retried.duplicates, 1);
  ASSERT_OK_AND_ASSIGN(std::vector<StoredEvent> all, store->UserEvents("u", 0, 0));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].event.id, "before");
  EXPECT_EQ(all[1].event.id, "during");
}

TEST(PgEventStoreOpen, NamesTheUrlWithoutItsPasswordWhenTheDatabaseIsUnreachable) {
  // Port 1 on loopback: nothing listens there.
  auto store = EventStore::Open({"postgresql://app:s3cret@127.0.0.1:1/ev?connect_timeout=2"});
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::IsUnavailable(store.status())) << store.status();
  EXPECT_NE(store.status().message().find("postgresql://app:***@127.0.0.1:1/ev"), std::string::npos)
      << store.status();
  EXPECT_EQ(store.status().message().find("s3cret"), std::string::npos) << store.status();
}

}  // namespace
}  // namespace recloop
