#include "serving/catalog_store.h"

#include <sqlite3.h>

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "data/pg_db.h"
#include "data/sqlite_db.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

constexpr const char* kWhat = "catalogue";

// The catalogue in an SQLite file beside one server.
class SqliteCatalogStore final : public CatalogStore {
 public:
  static absl::StatusOr<std::unique_ptr<CatalogStore>> Open(const std::string& path);
  ~SqliteCatalogStore() override { sqlite3_close(db_); }
  absl::Status PutAll(const CatalogMap& entries) override;
  absl::StatusOr<CatalogMap> LoadAll(int64_t* version) const override;

 private:
  SqliteCatalogStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  mutable std::mutex mu_;  // one statement at a time on the connection
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::string path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CatalogStore>> CatalogStore::Open(const std::string& path) {
  if (IsPostgresUrl(path)) return OpenPgCatalogStore(path);
  return SqliteCatalogStore::Open(path);
}

absl::StatusOr<CatalogMap> CatalogStore::ChangesSince(int64_t* /*version*/) const {
  return CatalogMap{};
}

absl::StatusOr<std::unique_ptr<CatalogStore>> SqliteCatalogStore::Open(const std::string& path) {
  auto opened = OpenSqlite(path, kWhat, /*serialized=*/true);
  if (!opened.ok()) return opened.status();
  sqlite3* db = *opened;
  std::unique_ptr<SqliteCatalogStore> store(new SqliteCatalogStore(db, path));
  const char* setup =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS items ("
      "  item TEXT PRIMARY KEY NOT NULL,"
      "  categories TEXT NOT NULL,"  // JSON array of strings
      "  available INTEGER NOT NULL,"
      "  title TEXT NOT NULL DEFAULT '');";
  if (absl::Status st = SqlExec(db, kWhat, path, setup); !st.ok()) {
    return absl::UnavailableError(
        absl::StrCat("catalogue ", path, " is not usable: ", st.message()));
  }
  // Catalogues written before titles existed gain the column (existing rows: no title).
  SqlStatement probe;
  if (sqlite3_prepare_v2(db, "SELECT title FROM items LIMIT 0", -1, &probe.stmt, nullptr) !=
      SQLITE_OK) {
    if (absl::Status st =
            SqlExec(db, kWhat, path, "ALTER TABLE items ADD COLUMN title TEXT NOT NULL DEFAULT ''");
        !st.ok()) {
      return absl::UnavailableError(
          absl::StrCat("catalogue ", path, " is not usable: ", st.message()));
    }
  }
  return store;
}

absl::Status SqliteCatalogStore::PutAll(const CatalogMap& entries) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(SqlExec(db_, kWhat, path_, "BEGIN IMMEDIATE"));
  absl::Status status = [&]() -> absl::Status {
    SqlStatement s;
    if (sqlite3_prepare_v2(db_,
                           "INSERT OR REPLACE INTO items(item, categories, available, title) "
                           "VALUES(?1, ?2, ?3, ?4)",
                           -1, &s.stmt, nullptr) != SQLITE_OK) {
      return SqlError(db_, kWhat, path_, "prepare");
    }
    for (const auto& [item, entry] : entries) {
      const std::string categories =
          nlohmann::json(entry.categories)
              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      sqlite3_reset(s.stmt);
      sqlite3_bind_text(s.stmt, 1, item.data(), static_cast<int>(item.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s.stmt, 2, categories.data(), static_cast<int>(categories.size()),
                        SQLITE_TRANSIENT);
      sqlite3_bind_int(s.stmt, 3, entry.available ? 1 : 0);
      sqlite3_bind_text(s.stmt, 4, entry.title.data(), static_cast<int>(entry.title.size()),
                        SQLITE_TRANSIENT);
      if (sqlite3_step(s.stmt) != SQLITE_DONE) return SqlError(db_, kWhat, path_, "write");
    }
    return absl::OkStatus();
  }();
  if (status.ok()) status = SqlExec(db_, kWhat, path_, "COMMIT");
  if (!status.ok()) SqlExec(db_, kWhat, path_, "ROLLBACK").IgnoreError();
  return status;
}

absl::StatusOr<CatalogMap> SqliteCatalogStore::LoadAll(int64_t* version) const {
  if (version != nullptr) *version = 0;
  std::lock_guard<std::mutex> lock(mu_);
  SqlStatement s;
  if (sqlite3_prepare_v2(db_, "SELECT item, categories, available, title FROM items", -1, &s.stmt,
                         nullptr) != SQLITE_OK) {
    return SqlError(db_, kWhat, path_, "prepare");
  }
  CatalogMap out;
  int rc;
  while ((rc = sqlite3_step(s.stmt)) == SQLITE_ROW) {
    const auto* item = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 0));
    const auto* categories = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 1));
    CatalogEntry entry;
    entry.available = sqlite3_column_int(s.stmt, 2) != 0;
    if (const auto* title = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 3))) {
      entry.title = title;
    }
    const auto parsed = nlohmann::json::parse(categories ? categories : "", nullptr, false);
    if (item == nullptr || parsed.is_discarded() || !parsed.is_array()) {
      return absl::DataLossError(absl::StrCat("catalogue ", path_, ": a row does not parse"));
    }
    for (const auto& c : parsed) {
      if (c.is_string()) entry.categories.push_back(c.get<std::string>());
    }
    out[item] = std::move(entry);
  }
  if (rc != SQLITE_DONE) return SqlError(db_, kWhat, path_, "read");
  return out;
}

}  // namespace recloop
