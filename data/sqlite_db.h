// Small helpers shared by recloop's SQLite stores (the event store here, the server's item
// catalogue): opening a connection with a name in its errors, statements finalised by scope,
// and executing SQL with the database's message in the error.
#ifndef RECLOOP_DATA_SQLITE_DB_H_
#define RECLOOP_DATA_SQLITE_DB_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace recloop {

// Finalises a prepared statement when it goes out of scope.
struct SqlStatement {
  sqlite3_stmt* stmt = nullptr;
  SqlStatement() = default;
  SqlStatement(const SqlStatement&) = delete;
  SqlStatement& operator=(const SqlStatement&) = delete;
  ~SqlStatement();
};

// Opens (creating if missing) the database at `path` for reading and writing, with a busy
// timeout. `what` names the store in errors ("event store", "catalogue"). Errors: Unavailable.
// `serialized`: the connection may be used from several threads (SQLite serialises); else the
// caller guarantees one thread at a time.
absl::StatusOr<sqlite3*> OpenSqlite(const std::string& path, const char* what, bool serialized);

// Internal error "WHAT PATH: CONTEXT: sqlite's message".
absl::Status SqlError(sqlite3* db, const char* what, const std::string& path,
                      const std::string& context);

// Runs `sql` (one or more statements). Errors: SqlError with the statement as context.
absl::Status SqlExec(sqlite3* db, const char* what, const std::string& path, const char* sql);

}  // namespace recloop

#endif  // RECLOOP_DATA_SQLITE_DB_H_
