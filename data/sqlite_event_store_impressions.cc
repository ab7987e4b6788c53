// The event store's impressions and attributions (serving/impression_log.h): written in batches
// through the writer thread. Split from sqlite_event_store.cc by size.
#include <sqlite3.h>

#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "data/sqlite_db.h"
#include "data/sqlite_event_store.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

constexpr const char* kWhat = "event store";

}  // namespace

absl::Status SqliteEventStore::AppendImpressions(std::span<const ImpressionRecord> impressions,
                                                 std::span<const AttributionRecord> attributions) {
  if (impressions.empty() && attributions.empty()) return absl::OkStatus();
  return Submit([&](sqlite3* db) -> absl::Status {
    const std::string& path = options_.path;
    SqlStatement put_impression, put_attribution;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO impressions(id, user, route, model_version, variant, "
                           "at_ms, items) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &put_impression.stmt, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO attributions(recommendation_id, user, item, type, "
                           "position, model_version, variant, at_ms) "
                           "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &put_attribution.stmt, nullptr) != SQLITE_OK) {
      return SqlError(db, kWhat, path, "prepare impressions");
    }
    auto text = [](sqlite3_stmt* st, int i, const std::string& v) {
      sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    };
    for (const ImpressionRecord& r : impressions) {
      sqlite3_stmt* st = put_impression.stmt;
      sqlite3_reset(st);
      text(st, 1, r.id);
      text(st, 2, r.user);
      text(st, 3, r.route);
      text(st, 4, r.model_version);
      text(st, 5, r.variant);
      sqlite3_bind_int64(st, 6, r.at_ms);
      text(st, 7, r.items);
      if (sqlite3_step(st) != SQLITE_DONE) return SqlError(db, kWhat, path, "insert impression");
    }
    for (const AttributionRecord& r : attributions) {
      sqlite3_stmt* st = put_attribution.stmt;
      sqlite3_reset(st);
      text(st, 1, r.recommendation_id);
      text(st, 2, r.user);
      text(st, 3, r.item);
      text(st, 4, r.type);
      sqlite3_bind_int(st, 5, r.position);
      text(st, 6, r.model_version);
      text(st, 7, r.variant);
      sqlite3_bind_int64(st, 8, r.at_ms);
      if (sqlite3_step(st) != SQLITE_DONE) return SqlError(db, kWhat, path, "insert attribution");
    }
    return absl::OkStatus();
  });
}

namespace {

// Runs `sql` on a read connection of its own (a scan of these tables is rare: a report or an
// export must not hold one of the pool's) and calls `row` for each row until it returns false.
absl::Status Scan(const std::string& path, const char* sql,
                  const std::function<bool(sqlite3_stmt*)>& row) {
  auto db = OpenSqlite(path, kWhat, /*serialized=*/false);
  if (!db.ok()) return db.status();
  struct Close {
    sqlite3* db;
    ~Close() { sqlite3_close(db); }
  } close{*db};
  SqlStatement st;
  if (sqlite3_prepare_v2(*db, sql, -1, &st.stmt, nullptr) != SQLITE_OK) {
    return SqlError(*db, kWhat, path, "read impressions");
  }
  int rc;
  while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
    if (!row(st.stmt)) return absl::OkStatus();
  }
  if (rc != SQLITE_DONE) return SqlError(*db, kWhat, path, "read impressions");
  return absl::OkStatus();
}

std::string Column(sqlite3_stmt* st, int i) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
  return std::string(p != nullptr ? p : "", sqlite3_column_bytes(st, i));
}

}  // namespace

absl::Status SqliteEventStore::ForEachImpression(
    const std::function<bool(const ImpressionRecord&)>& fn) const {
  return Scan(
      options_.path,
      "SELECT id, user, route, model_version, variant, at_ms, items FROM impressions "
      "ORDER BY seq",
      [&fn](sqlite3_stmt* st) {
        return fn(ImpressionRecord{Column(st, 0), Column(st, 1), Column(st, 2), Column(st, 3),
                                   Column(st, 4), sqlite3_column_int64(st, 5), Column(st, 6)});
      });
}

absl::Status SqliteEventStore::ForEachAttribution(
    const std::function<bool(const AttributionRecord&)>& fn) const {
  return Scan(options_.path,
              "SELECT recommendation_id, user, item, type, position, model_version, variant, "
              "at_ms FROM attributions ORDER BY seq",
              [&fn](sqlite3_stmt* st) {
                return fn(AttributionRecord{Column(st, 0), Column(st, 1), Column(st, 2),
                                            Column(st, 3), sqlite3_column_int(st, 4), Column(st, 5),
                                            Column(st, 6), sqlite3_column_int64(st, 7)});
              });
}

}  // namespace recloop
