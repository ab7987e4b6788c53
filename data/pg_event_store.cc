#include "data/pg_event_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstdlib>
#include <random>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/pg_db.h"
#include "engine/status_macros.h"

namespace recloop {
namespace {

constexpr const char* kWhat = "event store";
constexpr const char* kChannel = "recloop_events";

// Created when missing, under an advisory lock (replicas may start together).
constexpr const char* kSchema =
    "SET LOCAL client_min_messages = warning;"
    "SELECT pg_advisory_xact_lock(7262291);"
    "CREATE TABLE IF NOT EXISTS events ("
    "  seq BIGINT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  item_id TEXT NOT NULL,"
    "  type TEXT NOT NULL,"
    "  value REAL,"  // NULL: the type's weight
    "  ts BIGINT NOT NULL,"
    "  event_id TEXT UNIQUE);"  // NULLs never collide
    "CREATE INDEX IF NOT EXISTS events_by_user ON events(user_id, seq);"
    "CREATE TABLE IF NOT EXISTS erasures (user_id TEXT PRIMARY KEY, seq BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS erasures_by_seq ON erasures(seq);"
    "CREATE TABLE IF NOT EXISTS recloop_seq (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),"
    "  last BIGINT NOT NULL);"
    "INSERT INTO recloop_seq(one, last) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS impressions (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL,"
    "  user_id TEXT NOT NULL, route TEXT NOT NULL, model_version TEXT NOT NULL,"
    "  variant TEXT NOT NULL, at_ms BIGINT NOT NULL, items TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS attributions (seq BIGSERIAL PRIMARY KEY,"
    "  recommendation_id TEXT NOT NULL, user_id TEXT NOT NULL, item_id TEXT NOT NULL,"
    "  type TEXT NOT NULL, position INTEGER NOT NULL, model_version TEXT NOT NULL,"
    "  variant TEXT NOT NULL, at_ms BIGINT NOT NULL);";

constexpr const char* kEventColumns = "seq, user_id, item_id, type, value, ts, event_id";
constexpr int kChunk = 10000;  // rows per read of a scan

StoredEvent ReadEvent(const PgResult& r, int row) {
  StoredEvent e;
  e.seq = r.int64(row, 0);
  e.event.user = r.text(row, 1);
  e.event.item = r.text(row, 2);
  e.event.type = r.text(row, 3);
  if (!r.null(row, 4)) e.event.value = std::strtof(PQgetvalue(r.r, row, 4), nullptr);
  e.event.timestamp = r.int64(row, 5);
  if (!r.null(row, 6)) e.event.id = r.text(row, 6);
  return e;
}

// A session advisory lock, held by a connection of its own; released when it closes.
class PgLock final : public StoreLock {
 public:
  explicit PgLock(PGconn* conn) : conn_(conn) {}
  ~PgLock() override { PQfinish(conn_); }

 private:
  PGconn* conn_;
};

}  // namespace

// A connection borrowed from the pool for one call, reconnected first if it broke.
class PgEventStore::Lease {
 public:
  explicit Lease(const PgEventStore& store) : store_(store) {
    std::unique_lock<std::mutex> lock(store_.pool_mu_);
    store_.pool_cv_.wait(lock, [this] { return !store_.free_.empty(); });
    conn_ = store_.free_.back();
    store_.free_.pop_back();
  }
  ~Lease() {
    {
      std::lock_guard<std::mutex> lock(store_.pool_mu_);
      store_.free_.push_back(conn_);
    }
    store_.pool_cv_.notify_one();
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  // The connection, usable. Errors: Unavailable when the database cannot be reached.
  absl::StatusOr<PGconn*> conn() {
    if (PQstatus(conn_) != CONNECTION_OK) {
      PQreset(conn_);
      if (PQstatus(conn_) != CONNECTION_OK) {
        return absl::UnavailableError(absl::StrCat("event store ", store_.path(),
                                                   " is unreachable: ", PQerrorMessage(conn_)));
      }
    }
    return conn_;
  }

 private:
  const PgEventStore& store_;
  PGconn* conn_;
};

PgEventStore::PgEventStore(std::string url, std::vector<PGconn*> pool, PGconn* listener)
    : url_(std::move(url)), pool_(std::move(pool)), listener_(listener) {
  free_ = pool_;
  path_ = RedactPostgresUrl(url_);
}

PgEventStore::~PgEventStore() {
  for (PGconn* c : pool_) PQfinish(c);
  PQfinish(listener_);
}

absl::StatusOr<std::unique_ptr<EventStore>> PgEventStore::Open(const EventStoreOptions& options) {
  if (options.readers < 1) return absl::InvalidArgumentError("readers must be >= 1");
  const std::string& url = options.path;
  std::vector<PGconn*> pool;
  PGconn* listener = nullptr;
  auto fail = [&](absl::Status s) {
    for (PGconn* c : pool) PQfinish(c);
    PQfinish(listener);
    return s;
  };
  // The readers, and as many connections again for writes (each write holds one for its
  // transaction).
  for (int i = 0; i < 2 * options.readers; ++i) {
    pool.push_back(PgConnect(url));
    if (PQstatus(pool.back()) != CONNECTION_OK) {
      return fail(
          absl::UnavailableError(absl::StrCat("event store ", RedactPostgresUrl(url),
                                              " cannot be opened: ", PQerrorMessage(pool.back()))));
    }
  }
  listener = PgConnect(url);
  if (PQstatus(listener) != CONNECTION_OK) {
    return fail(absl::UnavailableError(absl::StrCat(
        "event store ", RedactPostgresUrl(url), " cannot be opened: ", PQerrorMessage(listener))));
  }
  PGconn* c = pool.front();
  {
    PgResult schema(PQexec(c, absl::StrCat("BEGIN;", kSchema, "COMMIT;").c_str()));
    if (PQresultStatus(schema.r) != PGRES_COMMAND_OK &&
        PQresultStatus(schema.r) != PGRES_TUPLES_OK) {
      const absl::Status s = PgError(c, kWhat, url, "creating the tables", schema.r);
      return fail(absl::UnavailableError(
          absl::StrCat(RedactPostgresUrl(url), " is not usable as an event store: ", s.message())));
    }
  }
  std::random_device rd;
  const std::string fresh = absl::StrFormat("%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  auto put = PgExec(kWhat, c, url,
                    "INSERT INTO meta(key, value) VALUES('store_id', $1) ON CONFLICT DO NOTHING",
                    {fresh.c_str()});
  if (!put.ok()) return fail(put.status());
  auto id = PgExec(kWhat, c, url, "SELECT value FROM meta WHERE key = 'store_id'");
  if (!id.ok()) return fail(id.status());
  if (auto listen = PgExec(kWhat, listener, url, absl::StrCat("LISTEN ", kChannel).c_str());
      !listen.ok()) {
    return fail(listen.status());
  }
  auto store = std::unique_ptr<PgEventStore>(new PgEventStore(url, std::move(pool), listener));
  store->id_ = (*id)->text(0, 0);
  return store;
}

absl::Status PgEventStore::Transaction(const std::function<absl::Status(PGconn*)>& body,
                                       bool read_only) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  RETURN_IF_ERROR(PgExec(kWhat, c, url_,
                         read_only ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN")
                      .status());
  absl::Status s = body(c);
  if (s.ok()) {
    // The acknowledgement: only a COMMIT that succeeded is a durable write. A connection lost
    // here leaves the outcome unknown (Unavailable): a retry with the same ids counts once.
    s = PgExec(kWhat, c, url_, "COMMIT").status();
  } else if (PQstatus(c) == CONNECTION_OK) {
    PgExec(kWhat, c, url_, "ROLLBACK").IgnoreError();
  }
  return s;
}

absl::StatusOr<AppendResult> PgEventStore::Append(std::span<const Event> events) {
  for (size_t i = 0; i < events.size(); ++i) {
    if (std::string error = EventError(events[i]); !error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("event ", i, ": ", error));
    }
  }
  AppendResult result;
  if (events.empty()) return result;
  pending_writes_.fetch_add(1, std::memory_order_relaxed);
  const absl::Status s = Transaction([&](PGconn* c) -> absl::Status {
    result = AppendResult{};
    // The lock that orders commits by seq (see the header), held until COMMIT. Every writer
    // takes it, so no other write inserts an id between the check below and the inserts.
    ASSIGN_OR_RETURN(auto last, PgExec(kWhat, c, url_, "SELECT last FROM recloop_seq FOR UPDATE"));
    // Which events are duplicates: an id stored before, or repeated in this batch. The ids are
    // looked up in one round trip (pipelined), so that only new events take seqs.
    std::vector<bool> duplicate(events.size(), false);
    std::vector<std::vector<const char*>> lookups;
    std::vector<size_t> looked_up;
    absl::flat_hash_set<std::string_view> ids;
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].id.empty()) continue;
      if (!ids.insert(events[i].id).second) {
        duplicate[i] = true;
      } else {
        lookups.push_back({events[i].id.c_str()});
        looked_up.push_back(i);
      }
    }
    if (!lookups.empty()) {
      ASSIGN_OR_RETURN(
          const auto found,
          PgExecPipelined(kWhat, c, url_, "SELECT 1 FROM events WHERE event_id = $1", lookups));
      for (size_t k = 0; k < found.size(); ++k) {
        if (found[k]->rows() > 0) duplicate[looked_up[k]] = true;
      }
    }
    // The new events, with the next seqs, in one more round trip.
    int64_t seq = last->int64(0, 0);
    std::vector<std::string> text(3 * events.size());
    std::vector<std::vector<const char*>> inserts;
    for (size_t i = 0; i < events.size(); ++i) {
      if (duplicate[i]) {
        ++result.duplicates;
        continue;
      }
      const Event& e = events[i];
      text[3 * i] = std::to_string(++seq);
      if (e.value) text[3 * i + 1] = absl::StrFormat("%.9g", *e.value);
      text[3 * i + 2] = std::to_string(e.timestamp);
      inserts.push_back({text[3 * i].c_str(), e.user.c_str(), e.item.c_str(), e.type.c_str(),
                         e.value ? text[3 * i + 1].c_str() : nullptr, text[3 * i + 2].c_str(),
                         e.id.empty() ? nullptr : e.id.c_str()});
    }
    if (inserts.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(PgExecPipelined(kWhat, c, url_,
                                    "INSERT INTO events(seq, user_id, item_id, type, value, ts, "
                                    "event_id) VALUES($1, $2, $3, $4, $5, $6, $7)",
                                    inserts)
                        .status());
    result.stored = static_cast<int64_t>(inserts.size());
    result.last_seq = seq;
    const std::string high = std::to_string(seq);
    RETURN_IF_ERROR(
        PgExec(kWhat, c, url_, "UPDATE recloop_seq SET last = $1", {high.c_str()}).status());
    if (result.stored == 0) return absl::OkStatus();
    return PgExec(kWhat, c, url_, absl::StrCat("NOTIFY ", kChannel).c_str()).status();
  });
  pending_writes_.fetch_sub(1, std::memory_order_relaxed);
  if (!s.ok()) return s;
  return result;
}

absl::StatusOr<int64_t> PgEventStore::DeleteUser(const std::string& user) {
  int64_t erased = 0;
  pending_writes_.fetch_add(1, std::memory_order_relaxed);
  const absl::Status s = Transaction([&](PGconn* c) -> absl::Status {
    ASSIGN_OR_RETURN(auto last, PgExec(kWhat, c, url_, "SELECT last FROM recloop_seq FOR UPDATE"));
    ASSIGN_OR_RETURN(
        auto del, PgExec(kWhat, c, url_, "DELETE FROM events WHERE user_id = $1", {user.c_str()}));
    erased = del->affected();
    // The erasure's own seq: followers see it as new (Erasures(after_seq)).
    const std::string seq = std::to_string(last->int64(0, 0) + 1);
    RETURN_IF_ERROR(
        PgExec(kWhat, c, url_, "UPDATE recloop_seq SET last = $1", {seq.c_str()}).status());
    RETURN_IF_ERROR(PgExec(kWhat, c, url_,
                           "INSERT INTO erasures(user_id, seq) VALUES($1, $2) "
                           "ON CONFLICT (user_id) DO UPDATE SET seq = EXCLUDED.seq",
                           {user.c_str(), seq.c_str()})
                        .status());
    return PgExec(kWhat, c, url_, absl::StrCat("NOTIFY ", kChannel).c_str()).status();
  });
  pending_writes_.fetch_sub(1, std::memory_order_relaxed);
  if (!s.ok()) return s;
  return erased;
}

absl::StatusOr<std::vector<StoredEvent>> PgEventStore::UserEvents(const std::string& user,
                                                                  int64_t limit,
                                                                  int64_t after_seq) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  const std::string after = std::to_string(after_seq);
  const std::string lim = limit > 0 ? std::to_string(limit) : "";
  // The most recent `limit`, returned oldest first.
  const std::string sql =
      absl::StrCat("SELECT * FROM (SELECT ", kEventColumns,
                   " FROM events WHERE user_id = $1 AND seq > $2 ORDER BY seq DESC LIMIT $3) e "
                   "ORDER BY seq");
  ASSIGN_OR_RETURN(auto res,
                   PgExec(kWhat, c, url_, sql.c_str(),
                          {user.c_str(), after.c_str(), limit > 0 ? lim.c_str() : nullptr}));
  std::vector<StoredEvent> out;
  out.reserve(res->rows());
  for (int i = 0; i < res->rows(); ++i) out.push_back(ReadEvent(*res, i));
  return out;
}

absl::StatusOr<int64_t> PgEventStore::ErasedAt(const std::string& user) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  ASSIGN_OR_RETURN(auto res, PgExec(kWhat, c, url_, "SELECT seq FROM erasures WHERE user_id = $1",
                                    {user.c_str()}));
  return res->rows() == 0 ? -1 : res->int64(0, 0);
}

absl::StatusOr<std::vector<EventStore::UserHistory>> PgEventStore::Histories(
    std::span<const std::string> users, int64_t after_seq) const {
  std::vector<UserHistory> out(users.size());
  const std::string after = std::to_string(after_seq);
  const std::string sql = absl::StrCat("SELECT ", kEventColumns,
                                       " FROM events WHERE user_id = $1 AND seq > $2 ORDER BY seq");
  // One snapshot for the whole batch.
  RETURN_IF_ERROR(Transaction(
      [&](PGconn* c) -> absl::Status {
        for (size_t i = 0; i < users.size(); ++i) {
          ASSIGN_OR_RETURN(auto ev,
                           PgExec(kWhat, c, url_, sql.c_str(), {users[i].c_str(), after.c_str()}));
          for (int r = 0; r < ev->rows(); ++r) out[i].events.push_back(ReadEvent(*ev, r));
          ASSIGN_OR_RETURN(auto er,
                           PgExec(kWhat, c, url_, "SELECT seq FROM erasures WHERE user_id = $1",
                                  {users[i].c_str()}));
          if (er->rows() > 0) out[i].erased_at = er->int64(0, 0);
        }
        return absl::OkStatus();
      },
      /*read_only=*/true));
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> PgEventStore::Erasures(
    int64_t after_seq) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  const std::string after = std::to_string(after_seq);
  ASSIGN_OR_RETURN(
      auto res,
      PgExec(kWhat, c, url_, "SELECT user_id, seq FROM erasures WHERE seq >= $1 ORDER BY user_id",
             {after.c_str()}));
  std::vector<std::pair<std::string, int64_t>> out;
  for (int i = 0; i < res->rows(); ++i) out.emplace_back(res->text(i, 0), res->int64(i, 1));
  return out;
}

absl::Status PgEventStore::ForEach(int64_t after_seq,
                                   const std::function<bool(const StoredEvent&)>& fn,
                                   int64_t through_seq) const {
  const std::string sql = absl::StrCat("SELECT ", kEventColumns,
                                       " FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq "
                                       "LIMIT ",
                                       kChunk);
  const std::string through = std::to_string(through_seq > 0 ? through_seq : INT64_MAX);
  int64_t from = after_seq;
  while (true) {  // in chunks of kChunk rows, each a read of its own
    std::unique_ptr<PgResult> res;
    {
      Lease lease(*this);
      ASSIGN_OR_RETURN(PGconn * c, lease.conn());
      const std::string after = std::to_string(from);
      ASSIGN_OR_RETURN(res, PgExec(kWhat, c, url_, sql.c_str(), {after.c_str(), through.c_str()}));
    }
    for (int i = 0; i < res->rows(); ++i) {
      StoredEvent e = ReadEvent(*res, i);
      from = e.seq;
      if (!fn(e)) return absl::OkStatus();
    }
    if (res->rows() < kChunk) return absl::OkStatus();
  }
}

absl::StatusOr<int64_t> PgEventStore::Count() const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  ASSIGN_OR_RETURN(auto res, PgExec(kWhat, c, url_, "SELECT COUNT(*) FROM events"));
  return res->int64(0, 0);
}

absl::StatusOr<int64_t> PgEventStore::LastSeq() const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  ASSIGN_OR_RETURN(auto res, PgExec(kWhat, c, url_, "SELECT last FROM recloop_seq"));
  return res->int64(0, 0);
}

absl::Status PgEventStore::AppendImpressions(std::span<const ImpressionRecord> impressions,
                                             std::span<const AttributionRecord> attributions) {
  if (impressions.empty() && attributions.empty()) return absl::OkStatus();
  return Transaction([&](PGconn* c) -> absl::Status {
    for (const ImpressionRecord& r : impressions) {
      const std::string at = std::to_string(r.at_ms);
      RETURN_IF_ERROR(
          PgExec(kWhat, c, url_,
                 "INSERT INTO impressions(id, user_id, route, model_version, variant, "
                 "at_ms, items) VALUES($1, $2, $3, $4, $5, $6, $7)",
                 {r.id.c_str(), r.user.c_str(), r.route.c_str(), r.model_version.c_str(),
                  r.variant.c_str(), at.c_str(), r.items.c_str()})
              .status());
    }
    for (const AttributionRecord& r : attributions) {
      const std::string at = std::to_string(r.at_ms);
      const std::string pos = std::to_string(r.position);
      RETURN_IF_ERROR(
          PgExec(kWhat, c, url_,
                 "INSERT INTO attributions(recommendation_id, user_id, item_id, type, "
                 "position, model_version, variant, at_ms) "
                 "VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
                 {r.recommendation_id.c_str(), r.user.c_str(), r.item.c_str(), r.type.c_str(),
                  pos.c_str(), r.model_version.c_str(), r.variant.c_str(), at.c_str()})
              .status());
    }
    return absl::OkStatus();
  });
}

namespace {

// Calls `row` for each row of `sql` (whose first column is the table's seq) in chunks.
absl::Status ScanBySeq(PGconn* c, const std::string& url, const std::string& sql,
                       const std::function<bool(const PgResult&, int)>& row) {
  int64_t from = 0;
  while (true) {
    const std::string after = std::to_string(from);
    ASSIGN_OR_RETURN(auto res, PgExec(kWhat, c, url, sql.c_str(), {after.c_str()}));
    for (int i = 0; i < res->rows(); ++i) {
      from = res->int64(i, 0);
      if (!row(*res, i)) return absl::OkStatus();
    }
    if (res->rows() < kChunk) return absl::OkStatus();
  }
}

}  // namespace

absl::Status PgEventStore::ForEachImpression(
    const std::function<bool(const ImpressionRecord&)>& fn) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  return ScanBySeq(
      c, url_,
      absl::StrCat("SELECT seq, id, user_id, route, model_version, variant, at_ms, "
                   "items FROM impressions WHERE seq > $1 ORDER BY seq LIMIT ",
                   kChunk),
      [&fn](const PgResult& r, int i) {
        return fn(ImpressionRecord{r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                                   r.text(i, 5), r.int64(i, 6), r.text(i, 7)});
      });
}

absl::Status PgEventStore::ForEachAttribution(
    const std::function<bool(const AttributionRecord&)>& fn) const {
  Lease lease(*this);
  ASSIGN_OR_RETURN(PGconn * c, lease.conn());
  return ScanBySeq(
      c, url_,
      absl::StrCat("SELECT seq, recommendation_id, user_id, item_id, type, position, "
                   "model_version, variant, at_ms FROM attributions WHERE seq > $1 ORDER BY seq "
                   "LIMIT ",
                   kChunk),
      [&fn](const PgResult& r, int i) {
        return fn(AttributionRecord{r.text(i, 1), r.text(i, 2), r.text(i, 3), r.text(i, 4),
                                    static_cast<int>(r.int64(i, 5)), r.text(i, 6), r.text(i, 7),
                                    r.int64(i, 8)});
      });
}

bool PgEventStore::WaitForWrites(int64_t after_seq, int timeout_ms) const {
  // Something newer already: no need to wait (a notification may have gone to a connection
  // that broke since).
  if (auto last = LastSeq(); last.ok() && *last > after_seq) return true;
  std::lock_guard<std::mutex> lock(listen_mu_);
  if (PQstatus(listener_) != CONNECTION_OK) {
    PQreset(listener_);
    if (PQstatus(listener_) == CONNECTION_OK) {
      PgExec(kWhat, listener_, url_, absl::StrCat("LISTEN ", kChannel).c_str()).IgnoreError();
      return true;  // notifications during the outage are lost: the caller looks
    }
    return false;
  }
  auto drained = [this] {
    bool any = false;
    PQconsumeInput(listener_);
    while (PGnotify* n = PQnotifies(listener_)) {
      any = true;
      PQfreemem(n);
    }
    return any;
  };
  if (drained()) return true;
  pollfd pfd{PQsocket(listener_), POLLIN, 0};
  if (pfd.fd < 0 || poll(&pfd, 1, timeout_ms) <= 0) return false;
  return drained() || PQstatus(listener_) != CONNECTION_OK;
}

absl::StatusOr<std::unique_ptr<StoreLock>> PgEventStore::TryLock(const std::string& name) {
  PGconn* c = PgConnect(url_);
  if (PQstatus(c) != CONNECTION_OK) {
    const absl::Status s = PgError(c, kWhat, url_, "lock");
    PQfinish(c);
    return s;
  }
  auto res = PgExec(kWhat, c, url_, "SELECT pg_try_advisory_lock(hashtext($1))", {name.c_str()});
  if (!res.ok()) {
    PQfinish(c);
    return res.status();
  }
  if ((*res)->text(0, 0) != "t") {
    PQfinish(c);
    return std::unique_ptr<StoreLock>();
  }
  return std::unique_ptr<StoreLock>(new PgLock(c));
}

}  // namespace recloop
