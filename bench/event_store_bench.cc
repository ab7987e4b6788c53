// The event store's write path (data/event_store.h): one Append of a group of events is one
// transaction and one fsync (synchronous=FULL), as the writer commits a group of requests.
// Users and items are uniform over 100K each, as in bench/run_ingest.sh. Beside it, in the same
// run, the same inserts through raw SQLite with the store's schema, with and without the
// per-user index, so that the index's share of the cost is measured rather than guessed.
#include <sqlite3.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "data/event_store.h"

namespace recloop {
namespace {

// Groups per repetition, each repetition on a fresh database: 200 groups of 1,600 events are
// 320K events, about what a 10-second batch-100 run of bench/run_ingest.sh stores.
constexpr int kIterations = 200;

std::string FreshPath(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "recloop-event-store-bench";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

std::vector<Event> RandomGroup(std::mt19937& rng, int n) {
  std::uniform_int_distribution<int> pick(0, 99'999);
  std::vector<Event> group(n);
  for (Event& e : group) {
    e.user = absl::StrCat("u", pick(rng));
    e.item = absl::StrCat("i", pick(rng));
    e.type = "view";
    e.timestamp = 1'700'000'000;
  }
  return group;
}

// The timed loop of both benchmarks: `write` stores one group of state.range(0) random events
// per iteration; drawing the group is not timed.
void TimeGroups(benchmark::State& state,
                const std::function<void(const std::vector<Event>&)>& write) {
  const int n = static_cast<int>(state.range(0));
  std::mt19937 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    const std::vector<Event> group = RandomGroup(rng, n);
    state.ResumeTiming();
    write(group);
  }
  state.SetItemsProcessed(state.iterations() * n);
}

// Args: {events per group}.
void BM_EventStoreAppend(benchmark::State& state) {
  auto store = EventStore::Open({FreshPath("append.db")});
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  TimeGroups(state, [&](const std::vector<Event>& group) {
    auto result = (*store)->Append(group);
    if (!result.ok()) state.SkipWithError(std::string(result.status().message()).c_str());
  });
}
// Real time: the commit runs on the store's writer thread, not the caller's.
BENCHMARK(BM_EventStoreAppend)
    ->ArgName("group")
    ->Arg(100)
    ->Arg(1600)
    ->Iterations(kIterations)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The baseline: the store's table through raw SQLite, one transaction per group. Args: {events
// per group, the per-user index (1) or not (0)}.
void BM_SqliteInsert(benchmark::State& state) {
  const bool index = state.range(1) != 0;
  sqlite3* db = nullptr;
  if (sqlite3_open(FreshPath(absl::StrCat("raw-", index, ".db")).c_str(), &db) != SQLITE_OK) {
    state.SkipWithError("cannot open the database");
    sqlite3_close(db);
    return;
  }
  const std::string schema = absl::StrCat(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
      "CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,"
      " item TEXT NOT NULL, type TEXT NOT NULL, value REAL, ts INTEGER NOT NULL,"
      " event_id TEXT UNIQUE);",
      index ? "CREATE INDEX events_by_user ON events(user);" : "");
  sqlite3_stmt* insert = nullptr;
  if (sqlite3_exec(db, schema.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "INSERT INTO events(user, item, type, value, ts, event_id) "
                         "VALUES(?1, ?2, ?3, NULL, ?4, NULL)",
                         -1, &insert, nullptr) != SQLITE_OK) {
    state.SkipWithError(sqlite3_errmsg(db));
    sqlite3_close(db);
    return;
  }
  TimeGroups(state, [&](const std::vector<Event>& group) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    for (const Event& e : group) {
      sqlite3_reset(insert);
      sqlite3_bind_text(insert, 1, e.user.data(), static_cast<int>(e.user.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 2, e.item.data(), static_cast<int>(e.item.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 3, e.type.data(), static_cast<int>(e.type.size()), SQLITE_STATIC);
      sqlite3_bind_int64(insert, 4, e.timestamp);
      if (sqlite3_step(insert) != SQLITE_DONE) state.SkipWithError(sqlite3_errmsg(db));
    }
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      state.SkipWithError(sqlite3_errmsg(db));
    }
  });
  sqlite3_finalize(insert);
  sqlite3_close(db);
}
BENCHMARK(BM_SqliteInsert)
    ->ArgNames({"group", "user_index"})
    ->ArgsProduct({{1600}, {1, 0}})
    ->Iterations(kIterations)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace recloop

BENCHMARK_MAIN();
