// Small helpers shared by recloop's PostgreSQL stores (the event store, the server's item
// catalogue), through libpq: results freed by scope, statements run with text parameters and
// the database's message in the error, errors told apart (Unavailable: the database cannot be
// reached now, so a caller answers 503 and a client retries; Internal: anything else).
#ifndef RECLOOP_DATA_PG_DB_H_
#define RECLOOP_DATA_PG_DB_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace recloop {

// True for a postgresql:// or postgres:// URL.
bool IsPostgresUrl(const std::string& path);
// `url` without the password, for logs and errors.
std::string RedactPostgresUrl(const std::string& url);

// Connects to `url` (a libpq URL or connection string) with a 5 s connect timeout unless the
// URL sets one. Never null; check PQstatus.
PGconn* PgConnect(const std::string& url);

// Owns a PGresult.
struct PgResult {
  PGresult* r = nullptr;
  explicit PgResult(PGresult* res) : r(res) {}
  ~PgResult();
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;
  int rows() const;
  std::string text(int row, int col) const;
  int64_t int64(int row, int col) const;
  bool null(int row, int col) const;
  // Rows affected by an INSERT, UPDATE or DELETE.
  int64_t affected() const;
};

// The error of a failed call on `conn` (`res`: its result, if any): "WHAT URL: CONTEXT: message"
// with the password redacted. Unavailable when the connection is gone or the server reports a
// connection exception, a shutdown or exhausted resources (SQLSTATE 08, 57P, 53); else Internal.
absl::Status PgError(PGconn* conn, const char* what, const std::string& url,
                     const std::string& context, const PGresult* res = nullptr);

// Runs `sql` with text parameters (nullptr = NULL). Errors: PgError with the statement as
// context.
absl::StatusOr<std::unique_ptr<PgResult>> PgExec(const char* what, PGconn* conn,
                                                 const std::string& url, const char* sql,
                                                 std::initializer_list<const char*> params = {});

// Runs `sql` once for each parameter list of `params`, in libpq's pipeline mode: one round trip
// for all of them, in order, inside the caller's transaction. Returns each run's result.
// Errors: PgError of the first run that failed (the runs after it are not applied).
absl::StatusOr<std::vector<std::unique_ptr<PgResult>>> PgExecPipelined(
    const char* what, PGconn* conn, const std::string& url, const char* sql,
    const std::vector<std::vector<const char*>>& params);

}  // namespace recloop

#endif  // RECLOOP_DATA_PG_DB_H_
