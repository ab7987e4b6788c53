#include "data/sqlite_event_store.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/thread_priority.h"
#include "data/sqlite_db.h"

namespace recloop {
namespace {

constexpr const char* kWhat = "event store";

absl::Status Exec(sqlite3* db, const std::string& path, const char* sql) {
  return SqlExec(db, kWhat, path, sql);
}

StoredEvent ReadRow(sqlite3_stmt* s) {
  auto text = [s](int col) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
    return std::string(p ? p : "", sqlite3_column_bytes(s, col));
  };
  StoredEvent e;
  e.seq = sqlite3_column_int64(s, 0);
  e.event.user = text(1);
  e.event.item = text(2);
  e.event.type = text(3);
  if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
    e.event.value = static_cast<float>(sqlite3_column_double(s, 4));
  }
  e.event.timestamp = sqlite3_column_int64(s, 5);
  if (sqlite3_column_type(s, 6) != SQLITE_NULL) e.event.id = text(6);
  return e;
}

constexpr const char* kColumns = "seq, user, item, type, value, ts, event_id";

// The store's tables, created when missing (so that an older store gains the newer ones).
constexpr const char* kSchema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"  // never reused, even after deletes
    "  user TEXT NOT NULL,"
    "  item TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  value REAL,"  // NULL: the type's weight
    "  ts INTEGER NOT NULL,"
    "  event_id TEXT UNIQUE);"  // NULLs never collide
    "CREATE INDEX IF NOT EXISTS events_by_user ON events(user);"
    // Users erased by DeleteUser, with the store's high-water seq at that moment: models
    // trained on events up to an earlier seq still hold the user's old interactions.
    "CREATE TABLE IF NOT EXISTS erasures ("
    "  user TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL);"
    // Lists shown and the events credited to them (serving/impression_log.h): written in
    // batches off the request path, never on an event's acknowledged path.
    // Plain rowids and no index on the random id: an insert appends to the table's last page.
    "CREATE TABLE IF NOT EXISTS impressions ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  route TEXT NOT NULL,"
    "  model_version TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  items TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS attributions ("
    "  seq INTEGER PRIMARY KEY,"
    "  recommendation_id TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  item TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  model_version TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  at_ms INTEGER NOT NULL);";

}  // namespace

// Prepared once: a write's statements are parsed once per store, not per request.
struct SqliteEventStore::WriterStatements {
  sqlite3_stmt* exists = nullptr;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* savepoint = nullptr;
  sqlite3_stmt* release = nullptr;
  sqlite3_stmt* rollback_to = nullptr;
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  ~WriterStatements() {
    for (sqlite3_stmt* st :
         {exists, insert, savepoint, release, rollback_to, begin, commit, rollback}) {
      sqlite3_finalize(st);
    }
  }
  absl::Status Prepare(sqlite3* db, const std::string& path) {
    const std::pair<sqlite3_stmt**, const char*> all[] = {
        {&exists, "SELECT 1 FROM events WHERE event_id = ?1"},
        {&insert,
         "INSERT INTO events(user, item, type, value, ts, event_id) "
         "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(event_id) DO NOTHING"},
        {&savepoint, "SAVEPOINT w"},
        {&release, "RELEASE w"},
        {&rollback_to, "ROLLBACK TO w"},
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"}};
    for (const auto& [stmt, sql] : all) {
      if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, nullptr) != SQLITE_OK) {
        return SqlError(db, kWhat, path, absl::StrCat("prepare ", sql));
      }
    }
    return absl::OkStatus();
  }
};

namespace {

// Runs a prepared statement that returns no rows.
absl::Status Step(sqlite3* db, sqlite3_stmt* st, const std::string& path, const char* context) {
  sqlite3_reset(st);
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return SqlError(db, kWhat, path, context);
  return absl::OkStatus();
}

}  // namespace

struct SqliteEventStore::Write {
  std::function<absl::Status(sqlite3*)> run;
  absl::Status status;
  bool done = false;
  std::condition_variable done_cv;
};

SqliteEventStore::SqliteEventStore(EventStoreOptions options, sqlite3* writer,
                                   std::unique_ptr<WriterStatements> writer_stmts,
                                   std::vector<sqlite3*> readers, sqlite3* checkpoint_db)
    : options_(std::move(options)),
      writer_db_(writer),
      writer_stmts_(std::move(writer_stmts)),
      readers_(std::move(readers)),
      checkpoint_db_(checkpoint_db) {
  free_readers_ = readers_;
  // Called on the writer thread after each commit with the WAL's size in pages.
  sqlite3_wal_hook(
      writer_db_,
      [](void* arg, sqlite3*, const char*, int pages) {
        auto* store = static_cast<SqliteEventStore*>(arg);
        bool wake = false;
        {
          std::lock_guard<std::mutex> lock(store->checkpoint_mu_);
          store->wal_pages_ = pages;
          wake = pages >= kCheckpointPages;
        }
        if (wake) store->checkpoint_cv_.notify_one();
        return SQLITE_OK;
      },
      this);
  checkpointer_ = std::thread([this] { CheckpointLoop(); });
  writer_ = std::thread([this] { WriterLoop(); });
}

void SqliteEventStore::CheckpointLoop() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  while (true) {
    checkpoint_cv_.wait(lock,
                        [this] { return checkpoint_stop_ || wal_pages_ >= kCheckpointPages; });
    if (checkpoint_stop_) return;
    wal_pages_ = 0;  // the next commit reports the WAL's size again
    lock.unlock();
    // PASSIVE: copies what no reader still needs and never blocks the writer or the readers.
    // Once every frame is copied, the writer starts the WAL over at its next commit.
    // A failure (busy: another checkpoint; an I/O error) is retried after the next commit past
    // the threshold.
    sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
  }
}

// A reader connection borrowed from the pool for one read; returned when it goes.
class SqliteEventStore::Reader {
 public:
  explicit Reader(const SqliteEventStore& store) : store_(store) {
    std::unique_lock<std::mutex> lock(store_.readers_mu_);
    store_.readers_cv_.wait(lock, [this] { return !store_.free_readers_.empty(); });
    db_ = store_.free_readers_.back();
    store_.free_readers_.pop_back();
  }
  ~Reader() {
    {
      std::lock_guard<std::mutex> lock(store_.readers_mu_);
      store_.free_readers_.push_back(db_);
    }
    store_.readers_cv_.notify_one();
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  sqlite3* db() const { return db_; }

 private:
  const SqliteEventStore& store_;
  sqlite3* db_;
};

SqliteEventStore::~SqliteEventStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  writer_.join();
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_all();
  checkpointer_.join();
  sqlite3_close(checkpoint_db_);
  for (sqlite3* db : readers_) sqlite3_close(db);
  writer_stmts_.reset();  // finalised before their connection closes
  sqlite3_close(writer_db_);
}

absl::StatusOr<std::unique_ptr<EventStore>> SqliteEventStore::Open(
    const EventStoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("the event store needs a path");
  if (options.max_writes_per_commit < 1) {
    return absl::InvalidArgumentError("max_writes_per_commit must be >= 1");
  }
  if (options.readers < 1) return absl::InvalidArgumentError("readers must be >= 1");
  if (options.writer_cache_mib < 1 || options.reader_cache_mib < 1) {
    return absl::InvalidArgumentError("the event store's cache sizes must be >= 1 MiB");
  }
  auto writer = OpenSqlite(options.path, kWhat, /*serialized=*/false);
  if (!writer.ok()) return writer.status();
  const char* setup = kSchema;
  if (absl::Status s = Exec(*writer, options.path, setup); !s.ok()) {
    sqlite3_close(*writer);
    return absl::UnavailableError(
        absl::StrCat("event store ", options.path, " is not usable: ", s.message()));
  }
  // A database with an `events` table of another shape is not ours.
  {
    SqlStatement probe;
    if (sqlite3_prepare_v2(*writer,
                           absl::StrCat("SELECT ", kColumns, " FROM events LIMIT 0").c_str(), -1,
                           &probe.stmt, nullptr) != SQLITE_OK) {
      const std::string message = sqlite3_errmsg(*writer);
      sqlite3_finalize(probe.stmt);
      probe.stmt = nullptr;
      sqlite3_close(*writer);
      return absl::UnavailableError(
          absl::StrCat(options.path, " is not a recloop event store: ", message));
    }
  }
  // The store's ID, chosen once when the store is created.
  std::string id;
  {
    std::random_device rd;
    const std::string fresh = absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
    SqlStatement put, get;
    const bool ok =
        sqlite3_prepare_v2(*writer, "INSERT OR IGNORE INTO meta(key, value) VALUES('store_id', ?1)",
                           -1, &put.stmt, nullptr) == SQLITE_OK &&
        sqlite3_bind_text(put.stmt, 1, fresh.data(), static_cast<int>(fresh.size()),
                          SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(put.stmt) == SQLITE_DONE &&
        sqlite3_prepare_v2(*writer, "SELECT value FROM meta WHERE key = 'store_id'", -1, &get.stmt,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(get.stmt) == SQLITE_ROW;
    if (!ok) {
      const absl::Status s = SqlError(*writer, kWhat, options.path, "store id");
      sqlite3_close(*writer);
      return s;
    }
    id = reinterpret_cast<const char*>(sqlite3_column_text(get.stmt, 0));
  }
  // From here on, a failure closes what is open so far.
  std::unique_ptr<WriterStatements> writer_stmts;
  std::vector<sqlite3*> readers;
  auto fail = [&](absl::Status s) {
    for (sqlite3* db : readers) sqlite3_close(db);
    writer_stmts.reset();  // finalised before their connection closes
    sqlite3_close(*writer);
    return s;
  };
  // The checkpointer thread checkpoints (CheckpointLoop), not the commit that crosses the
  // threshold; a bigger page cache keeps the per-user index's leaves in memory.
  if (absl::Status s = Exec(*writer, options.path,
                            absl::StrCat("PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-",
                                         int64_t{options.writer_cache_mib} * 1024)
                                .c_str());
      !s.ok()) {
    return fail(s);
  }
  writer_stmts = std::make_unique<WriterStatements>();
  if (absl::Status s = writer_stmts->Prepare(*writer, options.path); !s.ok()) return fail(s);
  for (int i = 0; i < options.readers; ++i) {
    auto reader = OpenSqlite(options.path, kWhat, /*serialized=*/false);
    if (!reader.ok()) return fail(reader.status());
    readers.push_back(*reader);
    Exec(*reader, options.path,
         absl::StrCat("PRAGMA cache_size=-", int64_t{options.reader_cache_mib} * 1024).c_str())
        .IgnoreError();  // a smaller cache is slower, not wrong
  }
  auto checkpoint_db = OpenSqlite(options.path, kWhat, /*serialized=*/false);
  if (!checkpoint_db.ok()) return fail(checkpoint_db.status());
  // A read first: a connection that has not opened the WAL yet has nothing to checkpoint.
  if (absl::Status s = Exec(*checkpoint_db, options.path, "SELECT COUNT(*) FROM sqlite_master");
      !s.ok()) {
    sqlite3_close(*checkpoint_db);
    return fail(s);
  }
  auto store = std::unique_ptr<SqliteEventStore>(new SqliteEventStore(
      options, *writer, std::move(writer_stmts), std::move(readers), *checkpoint_db));
  store->id_ = std::move(id);
  store->path_ = options.path;
  return store;
}

absl::Status SqliteEventStore::Submit(std::function<absl::Status(sqlite3*)> run) {
  Write w;
  w.run = std::move(run);
  std::unique_lock<std::mutex> lock(mu_);
  if (stop_) return absl::UnavailableError("the event store is closing");
  queue_.push_back(&w);
  pending_writes_.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_all();
  w.done_cv.wait(lock, [&w] { return w.done; });
  return w.status;
}

void SqliteEventStore::WriterLoop() {
  SetThisThreadNice(options_.writer_nice);
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<Write*> batch;
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    batch.clear();
    while (!queue_.empty() && static_cast<int>(batch.size()) < options_.max_writes_per_commit) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    const std::string& path = options_.path;
    const WriterStatements& ws = *writer_stmts_;
    absl::Status txn = Step(writer_db_, ws.begin, path, "BEGIN IMMEDIATE");
    if (txn.ok()) {
      for (Write* w : batch) {
        // Each write in its own savepoint: one that fails is undone alone.
        if (absl::Status s = Step(writer_db_, ws.savepoint, path, "savepoint"); !s.ok()) {
          w->status = s;
          continue;
        }
        w->status = w->run(writer_db_);
        if (!w->status.ok()) Step(writer_db_, ws.rollback_to, path, "rollback").IgnoreError();
        Step(writer_db_, ws.release, path, "release").IgnoreError();
      }
      txn = Step(writer_db_, ws.commit, path, "COMMIT");  // the one fsync of the group
      if (!txn.ok()) Step(writer_db_, ws.rollback, path, "ROLLBACK").IgnoreError();
    }
    lock.lock();
    for (Write* w : batch) {
      if (!txn.ok() && w->status.ok()) w->status = txn;
      w->done = true;
      w->done_cv.notify_all();
    }
    pending_writes_.fetch_sub(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
  }
}

absl::StatusOr<AppendResult> SqliteEventStore::Append(std::span<const Event> events) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (std::string error = EventError(events[i]); !error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event ", i, ": ", error));
    }
  }
  AppendResult result;
  if (events.empty()) return result;
  const absl::Status s = Submit([&](sqlite3* db) -> absl::Status {
    result = AppendResult{};
    sqlite3_stmt* const insert = writer_stmts_->insert;
    sqlite3_stmt* const exists = writer_stmts_->exists;
    struct Reset {  // leaves the statements reset, whichever way this returns
      sqlite3_stmt* a;
      sqlite3_stmt* b;
      ~Reset() {
        sqlite3_reset(a);
        sqlite3_reset(b);
      }
    } reset{insert, exists};
    for (const Event& e : events) {
      if (!e.id.empty()) {
        // A stored id is a duplicate, looked up first: an insert that conflicts would still
        // take an AUTOINCREMENT seq, and seqs must count stored events only.
        sqlite3_reset(exists);
        sqlite3_bind_text(exists, 1, e.id.data(), static_cast<int>(e.id.size()), SQLITE_STATIC);
        const int rc = sqlite3_step(exists);
        if (rc == SQLITE_ROW) {
          ++result.duplicates;
          continue;
        }
        if (rc != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "look up an id");
      }
      sqlite3_reset(insert);
      sqlite3_bind_text(insert, 1, e.user.data(), static_cast<int>(e.user.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 2, e.item.data(), static_cast<int>(e.item.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert, 3, e.type.data(), static_cast<int>(e.type.size()), SQLITE_STATIC);
      if (e.value) {
        sqlite3_bind_double(insert, 4, *e.value);
      } else {
        sqlite3_bind_null(insert, 4);
      }
      sqlite3_bind_int64(insert, 5, e.timestamp);
      if (e.id.empty()) {
        sqlite3_bind_null(insert, 6);
      } else {
        sqlite3_bind_text(insert, 6, e.id.data(), static_cast<int>(e.id.size()), SQLITE_STATIC);
      }
      if (sqlite3_step(insert) != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "insert");
      if (sqlite3_changes(db) == 0) {
        ++result.duplicates;
      } else {
        ++result.stored;
        result.last_seq = sqlite3_last_insert_rowid(db);
      }
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return result;
}

absl::StatusOr<int64_t> SqliteEventStore::DeleteUser(const std::string& user) {
  int64_t erased = 0;
  const absl::Status s = Submit([&](sqlite3* db) -> absl::Status {
    SqlStatement st;
    if (sqlite3_prepare_v2(db, "DELETE FROM events WHERE user = ?1", -1, &st.stmt, nullptr) !=
        SQLITE_OK) {
      return SqlError(db, kWhat, options_.path, "prepare");
    }
    sqlite3_bind_text(st.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
    if (sqlite3_step(st.stmt) != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "delete");
    erased = sqlite3_changes(db);
    SqlStatement mark;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO erasures(user, seq) VALUES(?1, (SELECT "
                           "IFNULL(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'events'))",
                           -1, &mark.stmt, nullptr) != SQLITE_OK) {
      return SqlError(db, kWhat, options_.path, "prepare");
    }
    sqlite3_bind_text(mark.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
    if (sqlite3_step(mark.stmt) != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "erase");
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return erased;
}

absl::StatusOr<std::vector<StoredEvent>> SqliteEventStore::UserEvents(const std::string& user,
                                                                      int64_t limit,
                                                                      int64_t after_seq) const {
  Reader reader(*this);
  sqlite3* db = reader.db();
  SqlStatement st;
  // The most recent `limit`, returned oldest first.
  const std::string sql = absl::StrCat(
      "SELECT * FROM (SELECT ", kColumns,
      " FROM events WHERE user = ?1 AND seq > ?3 ORDER BY seq DESC LIMIT ?2) ORDER BY seq");
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db, kWhat, options_.path, "prepare");
  }
  sqlite3_bind_text(st.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
  sqlite3_bind_int64(st.stmt, 2, limit > 0 ? limit : -1);  // negative: no limit
  sqlite3_bind_int64(st.stmt, 3, after_seq);
  std::vector<StoredEvent> out;
  int rc;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) out.push_back(ReadRow(st.stmt));
  if (rc != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "read");
  return out;
}

absl::StatusOr<int64_t> SqliteEventStore::ErasedAt(const std::string& user) const {
  Reader reader(*this);
  sqlite3* db = reader.db();
  SqlStatement st;
  if (sqlite3_prepare_v2(db, "SELECT seq FROM erasures WHERE user = ?1", -1, &st.stmt, nullptr) !=
      SQLITE_OK) {
    return SqlError(db, kWhat, options_.path, "prepare");
  }
  sqlite3_bind_text(st.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(st.stmt);
  if (rc == SQLITE_ROW) return sqlite3_column_int64(st.stmt, 0);
  if (rc != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "read");
  return -1;
}

absl::StatusOr<std::vector<EventStore::UserHistory>> SqliteEventStore::Histories(
    std::span<const std::string> users, int64_t after_seq) const {
  Reader reader(*this);
  sqlite3* db = reader.db();
  SqlStatement events, erased;
  const std::string sql =
      absl::StrCat("SELECT ", kColumns, " FROM events WHERE user = ?1 AND seq > ?2 ORDER BY seq");
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &events.stmt, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT seq FROM erasures WHERE user = ?1", -1, &erased.stmt,
                         nullptr) != SQLITE_OK) {
    return SqlError(db, kWhat, options_.path, "prepare");
  }
  // One snapshot for the whole batch; a read transaction never blocks the writer (WAL).
  if (absl::Status s = Exec(db, options_.path, "BEGIN"); !s.ok()) return s;
  std::vector<UserHistory> out(users.size());
  absl::Status status;
  for (size_t i = 0; i < users.size() && status.ok(); ++i) {
    const std::string& user = users[i];
    sqlite3_reset(events.stmt);
    sqlite3_bind_text(events.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
    sqlite3_bind_int64(events.stmt, 2, after_seq);
    int rc;
    while ((rc = sqlite3_step(events.stmt)) == SQLITE_ROW) {
      out[i].events.push_back(ReadRow(events.stmt));
    }
    if (rc != SQLITE_DONE) status = SqlError(db, kWhat, options_.path, "read");
    sqlite3_reset(erased.stmt);
    sqlite3_bind_text(erased.stmt, 1, user.data(), static_cast<int>(user.size()), SQLITE_STATIC);
    rc = sqlite3_step(erased.stmt);
    if (rc == SQLITE_ROW) {
      out[i].erased_at = sqlite3_column_int64(erased.stmt, 0);
    } else if (rc != SQLITE_DONE && status.ok()) {
      status = SqlError(db, kWhat, options_.path, "read");
    }
  }
  sqlite3_reset(events.stmt);
  sqlite3_reset(erased.stmt);
  Exec(db, options_.path, "COMMIT").IgnoreError();  // ends the read transaction
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> SqliteEventStore::Erasures(
    int64_t after_seq) const {
  Reader reader(*this);
  sqlite3* db = reader.db();
  SqlStatement st;
  if (sqlite3_prepare_v2(db, "SELECT user, seq FROM erasures WHERE seq >= ?1 ORDER BY user", -1,
                         &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db, kWhat, options_.path, "prepare");
  }
  sqlite3_bind_int64(st.stmt, 1, after_seq);
  std::vector<std::pair<std::string, int64_t>> out;
  int rc;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st.stmt, 0));
    out.emplace_back(std::string(p ? p : "", sqlite3_column_bytes(st.stmt, 0)),
                     sqlite3_column_int64(st.stmt, 1));
  }
  if (rc != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "read");
  return out;
}

absl::Status SqliteEventStore::ForEach(int64_t after_seq,
                                       const std::function<bool(const StoredEvent&)>& fn,
                                       int64_t through_seq) const {
  Reader reader(*this);
  sqlite3* db = reader.db();
  SqlStatement st;
  const std::string sql =
      absl::StrCat("SELECT ", kColumns, " FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq");
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db, kWhat, options_.path, "prepare");
  }
  sqlite3_bind_int64(st.stmt, 1, after_seq);
  sqlite3_bind_int64(st.stmt, 2, through_seq > 0 ? through_seq : INT64_MAX);
  int rc;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    if (!fn(ReadRow(st.stmt))) return absl::OkStatus();
  }
  if (rc != SQLITE_DONE) return SqlError(db, kWhat, options_.path, "read");
  return absl::OkStatus();
}

namespace {

absl::StatusOr<int64_t> SingleInt(sqlite3* db, const std::string& path, const char* sql) {
  SqlStatement st;
  if (sqlite3_prepare_v2(db, sql, -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(db, kWhat, path, "prepare");
  }
  if (sqlite3_step(st.stmt) != SQLITE_ROW) return SqlError(db, kWhat, path, "read");
  return sqlite3_column_int64(st.stmt, 0);
}

}  // namespace

absl::StatusOr<int64_t> SqliteEventStore::Count() const {
  Reader reader(*this);
  return SingleInt(reader.db(), options_.path, "SELECT COUNT(*) FROM events");
}

absl::StatusOr<int64_t> SqliteEventStore::LastSeq() const {
  Reader reader(*this);
  // The high-water mark: with AUTOINCREMENT a seq is never reused, even after its event is
  // erased, so this never goes down.
  return SingleInt(reader.db(), options_.path,
                   "SELECT IFNULL(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'events'");
}

}  // namespace recloop
