#include "data/event_store.h"

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/event_interactions.h"
#include "data/reader.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

Event Ev(std::string user, std::string item, std::string type, std::optional<float> value = {},
         int64_t ts = 1'700'000'000, std::string id = "") {
  return Event{std::move(user), std::move(item), std::move(type), value, ts, std::move(id)};
}

class EventStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<EventStore> Open() {
    auto store = EventStore::Open({dir_.File("events.db")});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  test::TempDir dir_;
};

TEST_F(EventStoreTest, AppendedEventsSurviveReopeningInOrder) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    const std::vector<Event> batch = {Ev("u1", "i1", "view"), Ev("u1", "i2", "rating", 4.5f),
                                      Ev("u2", "i1", "purchase", 1.0f)};
    ASSERT_OK_AND_ASSIGN(const AppendResult r, store->Append(batch));
    EXPECT_EQ(r.stored, 3);
    EXPECT_EQ(r.duplicates, 0);
    EXPECT_EQ(r.last_seq, 3);
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK_AND_ASSIGN(const auto u1, store->UserEvents("u1"));
  ASSERT_EQ(u1.size(), 2u);
  EXPECT_EQ(u1[0].event.item, "i1");
  EXPECT_FALSE(u1[0].event.value.has_value());
  EXPECT_EQ(u1[1].event.type, "rating");
  EXPECT_FLOAT_EQ(*u1[1].event.value, 4.5f);
  EXPECT_LT(u1[0].seq, u1[1].seq);
  ASSERT_OK_AND_ASSIGN(const auto last, store->UserEvents("u1", /*limit=*/1));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].event.item, "i2");
  EXPECT_EQ(store->Count().value(), 3);
  EXPECT_EQ(store->LastSeq().value(), 3);
}

TEST_F(EventStoreTest, EventIdsMakeRetriesIdempotent) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::vector<Event> batch = {Ev("u1", "i1", "click", {}, 1, "a"),
                                    Ev("u1", "i2", "click", {}, 1, "b"),
                                    Ev("u1", "i3", "click")};  // no id: always stored
  ASSERT_OK_AND_ASSIGN(AppendResult r, store->Append(batch));
  EXPECT_EQ(r.stored, 3);
  ASSERT_OK_AND_ASSIGN(r, store->Append(batch));  // the client retries
  EXPECT_EQ(r.stored, 1);
  EXPECT_EQ(r.duplicates, 2);
  EXPECT_EQ(store->Count().value(), 4);
  // A duplicate takes no seq: seqs count stored events (the retrain's holdout is the newest
  // seqs, so a retried batch must not make it look empty).
  EXPECT_EQ(store->LastSeq().value(), 4);
  EXPECT_EQ(r.last_seq, 4);
  ASSERT_OK_AND_ASSIGN(r, store->Append(std::vector<Event>{Ev("u2", "i1", "view", {}, 1, "c"),
                                                           Ev("u2", "i1", "view", {}, 1, "c")}));
  EXPECT_EQ(r.stored, 1);
  EXPECT_EQ(r.duplicates, 1);
  EXPECT_EQ(store->LastSeq().value(), 5);
}

TEST_F(EventStoreTest, BadEventRejectsTheWholeBatch) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::vector<Event> batch = {Ev("u1", "i1", "view"), Ev("u,2", "i1", "view")};
  const auto r = store->Append(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("event 1"), std::string::npos) << r.status();
  EXPECT_EQ(store->Count().value(), 0);
  EXPECT_NE(EventError(Ev("u", "i", "view", std::numeric_limits<float>::infinity())), "");
  EXPECT_NE(EventError(Ev("u", "", "view")), "");
  EXPECT_NE(EventError(Ev("u", "i", std::string(40, 't'))), "");
  EXPECT_EQ(EventError(Ev("u", "i", "view")), "");
}

TEST_F(EventStoreTest, ConcurrentAppendsAreAllStoredOnceWithDistinctSeqs) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8, kBatches = 40, kPerBatch = 5;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<Event> batch;
        for (int e = 0; e < kPerBatch; ++e) {
          batch.push_back(Ev("u" + std::to_string(t), "i" + std::to_string(b * kPerBatch + e),
                             "view", {}, 1, absl::StrCat(t, "-", b, "-", e)));
        }
        const auto r = store->Append(batch);
        if (!r.ok() || r->stored != kPerBatch) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store->Count().value(), kThreads * kBatches * kPerBatch);
  std::set<int64_t> seqs;
  std::set<std::string> ids;
  ASSERT_OK(store->ForEach(0, [&](const StoredEvent& e) {
    seqs.insert(e.seq);
    ids.insert(e.event.id);
    return true;
  }));
  EXPECT_EQ(seqs.size(), static_cast<size_t>(kThreads * kBatches * kPerBatch));
  EXPECT_EQ(ids.size(), seqs.size());
}

// The write queue's depth (issue 22's backpressure reads it): a write counts from being handed
// to the writer until it commits. Another connection holding SQLite's write lock keeps the
// writer waiting (within its 10 s busy timeout).
TEST_F(EventStoreTest, PendingWritesCountsWritesUntilTheyCommit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->pending_writes(), 0);
  sqlite3* locker = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.File("events.db").c_str(), &locker), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(locker, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&store, t] {
      const std::vector<Event> batch = {Ev(absl::StrCat("u", t), "i1", "view")};
      EXPECT_TRUE(store->Append(batch).ok());
    });
  }
  for (int i = 0; i < 2000 && store->pending_writes() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int64_t waiting = store->pending_writes();
  EXPECT_EQ(sqlite3_exec(locker, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(locker);
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(waiting, 3);
  EXPECT_EQ(store->pending_writes(), 0);
  auto count = store->Count();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 3);
}

TEST_F(EventStoreTest, DeleteUserErasesOnlyThatUser) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store
                ->Append(std::vector<Event>{Ev("a", "i1", "view"), Ev("b", "i1", "view"),
                                            Ev("a", "i2", "cart")})
                .status());
  ASSERT_OK_AND_ASSIGN(const int64_t erased, store->DeleteUser("a"));
  EXPECT_EQ(erased, 2);
  EXPECT_TRUE(store->UserEvents("a").value().empty());
  EXPECT_EQ(store->UserEvents("b").value().size(), 1u);
  // Seqs are never reused after a delete.
  ASSERT_OK_AND_ASSIGN(const AppendResult r,
                       store->Append(std::vector<Event>{Ev("c", "i1", "view")}));
  EXPECT_EQ(r.last_seq, 4);
  // The erasure is recorded with the high-water seq at that moment, and survives reopening.
  EXPECT_EQ(store->ErasedAt("a").value(), 3);
  EXPECT_EQ(store->ErasedAt("b").value(), -1);
  ASSERT_OK(store->DeleteUser("b").status());
  store.reset();
  store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ErasedAt("b").value(), 4);
  ASSERT_OK_AND_ASSIGN(const auto after_3, store->Erasures(4));
  ASSERT_EQ(after_3.size(), 1u);
  EXPECT_EQ(after_3[0].first, "b");
  EXPECT_EQ(store->Erasures(0).value().size(), 2u);
  // LastSeq is the high-water mark: it does not go down when the newest events are erased.
  ASSERT_OK(store->DeleteUser("c").status());
  EXPECT_EQ(store->LastSeq().value(), 4);
}

// The WAL is copied into the database by the store's checkpointer thread while it stays open
// (the writer itself never checkpoints): the database file grows past its empty size.
TEST_F(EventStoreTest, TheCheckpointerCopiesTheWalIntoTheDatabase) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string db = dir_.File("events.db");
  const auto empty_size = std::filesystem::file_size(db);
  // Each commit adds a few pages to the WAL: enough commits to pass kCheckpointPages.
  for (int i = 0; i < 600; ++i) {
    std::vector<Event> batch;
    for (int j = 0; j < 20; ++j) {
      batch.push_back(Ev(absl::StrCat("user-", i * 7919 % 1000 + j), absl::StrCat("i", j), "view"));
    }
    ASSERT_OK(store->Append(batch).status());
  }
  for (int i = 0; i < 500 && std::filesystem::file_size(db) <= empty_size + 100'000; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // bounded: 5 s
  }
  EXPECT_GT(std::filesystem::file_size(db), empty_size + 100'000);
  EXPECT_EQ(store->Count().value(), 600 * 20);
}

// The fold queue's batched read gives each user what UserEvents and ErasedAt give one by one.
TEST_F(EventStoreTest, HistoriesAreEachUsersEventsAfterASeqAndTheirErasure) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store
                ->Append(std::vector<Event>{Ev("a", "i1", "view"), Ev("b", "i1", "view"),
                                            Ev("a", "i2", "cart"), Ev("c", "i3", "view")})
                .status());
  ASSERT_OK(store->DeleteUser("c").status());
  ASSERT_OK(
      store->Append(std::vector<Event>{Ev("c", "i4", "click"), Ev("a", "i5", "view")}).status());
  const std::vector<std::string> users = {"a", "nobody", "c", "b", "a"};
  ASSERT_OK_AND_ASSIGN(const auto histories, store->Histories(users, 1));
  ASSERT_EQ(histories.size(), users.size());
  for (size_t i = 0; i < users.size(); ++i) {
    const auto one = store->UserEvents(users[i], 0, 1).value();
    ASSERT_EQ(histories[i].events.size(), one.size()) << users[i];
    for (size_t j = 0; j < one.size(); ++j) {
      EXPECT_EQ(histories[i].events[j].seq, one[j].seq);
      EXPECT_EQ(histories[i].events[j].event.item, one[j].event.item);
      EXPECT_EQ(histories[i].events[j].event.type, one[j].event.type);
    }
    EXPECT_EQ(histories[i].erased_at, store->ErasedAt(users[i]).value()) << users[i];
  }
  EXPECT_EQ(histories[0].events.size(), 2u);  // a: seqs 3 and 6 (seq 1 is not after 1)
  EXPECT_EQ(histories[2].erased_at, 4);
  EXPECT_TRUE(histories[1].events.empty());
  EXPECT_TRUE(store->Histories({}, 0).value().empty());
}

// A model's last trained seq counts only in the store it was trained on: a model matched with
// another store (a fresh one, whose seqs restart at 1) has none of its events.
TEST_F(EventStoreTest, AModelsLastSeqCountsOnlyInItsOwnStore) {
  auto a = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_OK_AND_ASSIGN(auto b, EventStore::Open({dir_.File("other.db")}));
  EXPECT_EQ(a->id().size(), 32u);
  EXPECT_NE(a->id(), b->id());
  const std::string id = a->id();
  a.reset();
  a = Open();
  EXPECT_EQ(a->id(), id);  // kept across reopening
  FactorModel model;
  model.lineage.events_through_seq = 100;
  model.lineage.events_store_id = id;
  EXPECT_EQ(EventsThroughSeq(model, *a), 100);
  EXPECT_EQ(EventsThroughSeq(model, *b), 0);
}

TEST_F(EventStoreTest, ExportIsTheCsvThatTrainingReads) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store
                ->Append(std::vector<Event>{Ev("u1", "i1", "purchase"),
                                            Ev("u1", "i2", "rating", 4.0f, 1'700'000'100),
                                            Ev("u2", "i1", "view")})
                .status());
  const std::string csv = dir_.File("events.csv");
  ASSERT_OK_AND_ASSIGN(const int64_t rows, store->ExportCsv(csv));
  EXPECT_EQ(rows, 3);
  ReadOptions options;
  ASSERT_OK_AND_ASSIGN(const Interactions data, ReadInteractions(csv, options));
  ASSERT_EQ(data.size(), 3);
  std::map<std::string, std::pair<float, int64_t>> got;  // "user/item" -> (value, timestamp)
  for (int64_t r = 0; r < data.size(); ++r) {
    got[data.users.External(data.user[r]) + "/" + data.items.External(data.item[r])] = {
        data.value[r], data.timestamp[r]};
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_FLOAT_EQ(got["u1/i1"].first, 5.0f);  // no value: the purchase weight
  EXPECT_FLOAT_EQ(got["u1/i2"].first, 4.0f);
  EXPECT_EQ(got["u1/i2"].second, 1'700'000'100);
  EXPECT_FLOAT_EQ(got["u2/i1"].first, 1.0f);  // the view weight
}

TEST_F(EventStoreTest, AFileThatIsNotAnEventStoreIsRefusedByName) {
  const std::string path = dir_.Write("other.db", std::string(200, 'x'));
  const auto store = EventStore::Open({path});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status();
  EXPECT_FALSE(EventStore::Open({""}).ok());
}

}  // namespace
}  // namespace recloop
