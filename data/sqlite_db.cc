#include "data/sqlite_db.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace recloop {

SqlStatement::~SqlStatement() { sqlite3_finalize(stmt); }

absl::StatusOr<sqlite3*> OpenSqlite(const std::string& path, const char* what, bool serialized) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                    (serialized ? SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_NOMUTEX);
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open ", what, " ", path, ": ", message));
  }
  sqlite3_busy_timeout(db, 10'000);
  return db;
}

absl::Status SqlError(sqlite3* db, const char* what, const std::string& path,
                      const std::string& context) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", context, ": ", sqlite3_errmsg(db)));
}

absl::Status SqlExec(sqlite3* db, const char* what, const std::string& path, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat(what, " ", path, ": ", sql, ": ", message));
  }
  return absl::OkStatus();
}

}  // namespace recloop
