#include "data/pg_db.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace recloop {

bool IsPostgresUrl(const std::string& path) {
  return absl::StartsWith(path, "postgresql://") || absl::StartsWith(path, "postgres://");
}

std::string RedactPostgresUrl(const std::string& url) {
  // scheme://user:password@host... -> scheme://user:***@host...
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return std::string(url);
  const size_t at = url.find('@', scheme + 3);
  const size_t colon = url.find(':', scheme + 3);
  if (at == std::string::npos || colon == std::string::npos || colon > at) {
    return std::string(url);
  }
  return absl::StrCat(url.substr(0, colon + 1), "***", url.substr(at));
}

PGconn* PgConnect(const std::string& url) {
  // connect_timeout first, so that one given in the URL wins.
  const char* keys[] = {"connect_timeout", "dbname", "application_name", nullptr};
  const char* values[] = {"5", url.c_str(), "recloop", nullptr};
  return PQconnectdbParams(keys, values, /*expand_dbname=*/1);
}

PgResult::~PgResult() { PQclear(r); }
int PgResult::rows() const { return PQntuples(r); }
std::string PgResult::text(int row, int col) const {
  return std::string(PQgetvalue(r, row, col), PQgetlength(r, row, col));
}
int64_t PgResult::int64(int row, int col) const {
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}
bool PgResult::null(int row, int col) const { return PQgetisnull(r, row, col) != 0; }
int64_t PgResult::affected() const { return std::strtoll(PQcmdTuples(r), nullptr, 10); }

absl::Status PgError(PGconn* conn, const char* what, const std::string& url,
                     const std::string& context, const PGresult* res) {
  std::string message = res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
  const std::string text = absl::StrCat(what, " ", RedactPostgresUrl(url), ": ", context, ": ",
                                        message.empty() ? "connection lost" : message);
  if (PQstatus(conn) != CONNECTION_OK) return absl::UnavailableError(text);
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  if (state != nullptr && (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
                           absl::StartsWith(state, "53"))) {
    return absl::UnavailableError(text);
  }
  return absl::InternalError(text);
}

absl::StatusOr<std::unique_ptr<PgResult>> PgExec(const char* what, PGconn* conn,
                                                 const std::string& url, const char* sql,
                                                 std::initializer_list<const char*> params) {
  std::vector<const char*> values(params);
  auto res = std::make_unique<PgResult>(PQexecParams(conn, sql, static_cast<int>(values.size()),
                                                     nullptr, values.data(), nullptr, nullptr, 0));
  const ExecStatusType st = PQresultStatus(res->r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return PgError(conn, what, url, sql, res->r);
  }
  return res;
}

absl::StatusOr<std::vector<std::unique_ptr<PgResult>>> PgExecPipelined(
    const char* what, PGconn* conn, const std::string& url, const char* sql,
    const std::vector<std::vector<const char*>>& params) {
  if (PQenterPipelineMode(conn) != 1) return PgError(conn, what, url, "pipeline mode");
  absl::Status failed;
  for (const auto& values : params) {
    if (PQsendQueryParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(),
                          nullptr, nullptr, 0) != 1) {
      failed = PgError(conn, what, url, sql);
      break;
    }
  }
  if (failed.ok() && PQpipelineSync(conn) != 1) failed = PgError(conn, what, url, "pipeline sync");
  std::vector<std::unique_ptr<PgResult>> out;
  // Every query sent gives its result then a null; the sync gives PGRES_PIPELINE_SYNC. After an
  // error the rest are PGRES_PIPELINE_ABORTED. Read them all, up to the sync, or until the
  // connection is gone.
  const size_t sent = failed.ok() ? params.size() : 0;
  for (size_t i = 0; i < sent && PQstatus(conn) == CONNECTION_OK; ++i) {
    auto res = std::make_unique<PgResult>(PQgetResult(conn));
    if (res->r == nullptr) {
      if (failed.ok()) failed = PgError(conn, what, url, sql);
      break;
    }
    const ExecStatusType st = PQresultStatus(res->r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && failed.ok()) {
      failed = PgError(conn, what, url, sql, res->r);
    }
    out.push_back(std::move(res));
    PQclear(PQgetResult(conn));  // the null that ends this query's results
  }
  if (failed.ok() || PQstatus(conn) == CONNECTION_OK) {
    while (PGresult* r = PQgetResult(conn)) {  // up to and including the sync
      const bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
      PQclear(r);
      if (sync) break;
    }
  }
  PQexitPipelineMode(conn);
  if (!failed.ok()) return failed;
  return out;
}

}  // namespace recloop
