// The item catalogue in PostgreSQL, shared by the replicas of a deployment (`recloop serve
// --catalog postgresql://...`, docs/scaling.md). Every write takes the next catalogue version
// under a row lock held to its commit, so versions follow commit order and a replica that has
// read up to version V never sees a smaller one appear later: ChangesSince(V) is exact. The
// replica follower (serving/replica_follower.h) applies other replicas' writes with it.
#include <libpq-fe.h>

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "data/pg_db.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "serving/catalog_store.h"

namespace recloop {
namespace {

constexpr const char* kWhat = "catalogue";

constexpr const char* kSchema =
    "BEGIN;"
    "SET LOCAL client_min_messages = warning;"
    "SELECT pg_advisory_xact_lock(7262292);"
    "CREATE TABLE IF NOT EXISTS catalog_items (item TEXT PRIMARY KEY, categories TEXT NOT NULL,"
    "  available BOOLEAN NOT NULL, title TEXT NOT NULL DEFAULT '', version BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS catalog_items_by_version ON catalog_items(version);"
    "CREATE TABLE IF NOT EXISTS catalog_version (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),"
    "  last BIGINT NOT NULL);"
    "INSERT INTO catalog_version(one, last) VALUES (TRUE, 0) ON CONFLICT DO NOTHING;"
    "COMMIT;";

class PgCatalogStore final : public CatalogStore {
 public:
  PgCatalogStore(std::string url, PGconn* conn) : url_(std::move(url)), conn_(conn) {}
  ~PgCatalogStore() override { PQfinish(conn_); }

  absl::Status PutAll(const CatalogMap& entries) override {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(Connected());
    RETURN_IF_ERROR(PgExec(kWhat, conn_, url_, "BEGIN").status());
    absl::Status s = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto last,
                       PgExec(kWhat, conn_, url_, "SELECT last FROM catalog_version FOR UPDATE"));
      const std::string version = std::to_string(last->int64(0, 0) + 1);
      for (const auto& [item, entry] : entries) {
        const std::string categories =
            nlohmann::json(entry.categories)
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        RETURN_IF_ERROR(
            PgExec(kWhat, conn_, url_,
                   "INSERT INTO catalog_items(item, categories, available, title, version) "
                   "VALUES($1, $2, $3, $4, $5) ON CONFLICT (item) DO UPDATE SET categories = "
                   "EXCLUDED.categories, available = EXCLUDED.available, title = EXCLUDED.title, "
                   "version = EXCLUDED.version",
                   {item.c_str(), categories.c_str(), entry.available ? "true" : "false",
                    entry.title.c_str(), version.c_str()})
                .status());
      }
      return PgExec(kWhat, conn_, url_, "UPDATE catalog_version SET last = $1", {version.c_str()})
          .status();
    }();
    if (s.ok()) s = PgExec(kWhat, conn_, url_, "COMMIT").status();
    if (!s.ok() && PQstatus(conn_) == CONNECTION_OK) {
      PgExec(kWhat, conn_, url_, "ROLLBACK").IgnoreError();
    }
    return s;
  }

  absl::StatusOr<CatalogMap> LoadAll(int64_t* version) const override {
    int64_t v = 0;
    ASSIGN_OR_RETURN(CatalogMap all, Read(&v, /*all=*/true));
    if (version != nullptr) *version = v;
    return all;
  }

  bool shared() const override { return true; }
  absl::StatusOr<CatalogMap> ChangesSince(int64_t* version) const override {
    return Read(version, /*all=*/false);
  }

 private:
  absl::Status Connected() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    PQreset(conn_);
    if (PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
    return PgError(conn_, kWhat, url_, "connect");
  }

  // Every entry (all), or those after *version; *version moves to the latest version read. One
  // snapshot for the version and the rows.
  absl::StatusOr<CatalogMap> Read(int64_t* version, bool all) const {
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(Connected());
    RETURN_IF_ERROR(
        PgExec(kWhat, conn_, url_, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").status());
    CatalogMap out;
    absl::Status s = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto last, PgExec(kWhat, conn_, url_, "SELECT last FROM catalog_version"));
      const std::string after = std::to_string(all ? -1 : *version);
      ASSIGN_OR_RETURN(auto rows, PgExec(kWhat, conn_, url_,
                                         "SELECT item, categories, available, title FROM "
                                         "catalog_items WHERE version > $1",
                                         {after.c_str()}));
      for (int i = 0; i < rows->rows(); ++i) {
        CatalogEntry entry;
        entry.available = rows->text(i, 2) == "t";
        entry.title = rows->text(i, 3);
        const auto parsed = nlohmann::json::parse(rows->text(i, 1), nullptr, false);
        if (parsed.is_discarded() || !parsed.is_array()) {
          return absl::DataLossError(absl::StrCat("catalogue ", RedactPostgresUrl(url_),
                                                  ": the row of item '", rows->text(i, 0),
                                                  "' does not parse"));
        }
        for (const auto& c : parsed) {
          if (c.is_string()) entry.categories.push_back(c.get<std::string>());
        }
        out[rows->text(i, 0)] = std::move(entry);
      }
      *version = last->int64(0, 0);
      return absl::OkStatus();
    }();
    if (PQstatus(conn_) == CONNECTION_OK) PgExec(kWhat, conn_, url_, "COMMIT").IgnoreError();
    if (!s.ok()) return s;
    return out;
  }

  const std::string url_;
  mutable std::mutex mu_;  // one statement at a time on the connection
  PGconn* const conn_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<CatalogStore>> OpenPgCatalogStore(const std::string& url) {
  PGconn* conn = PgConnect(url);
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("catalogue ", RedactPostgresUrl(url), " cannot be opened: ", message));
  }
  PgResult schema(PQexec(conn, kSchema));
  if (PQresultStatus(schema.r) != PGRES_COMMAND_OK && PQresultStatus(schema.r) != PGRES_TUPLES_OK) {
    const absl::Status s = PgError(conn, kWhat, url, "creating the tables", schema.r);
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat(RedactPostgresUrl(url), " is not usable as a catalogue: ", s.message()));
  }
  return std::unique_ptr<CatalogStore>(new PgCatalogStore(url, conn));
}

}  // namespace recloop
