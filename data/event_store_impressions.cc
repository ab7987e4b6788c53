// The event store's impressions and attributions (serving/impression_log.h): written in batches
// through the writer thread, exported as JSON Lines. Split from event_store.cc by size.
#include <sqlite3.h>

#include <fstream>
#include <functional>

#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "data/sqlite_db.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

constexpr const char* kWhat = "event store";

}  // namespace

absl::Status EventStore::AppendImpressions(std::span<const ImpressionRecord> impressions,
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

absl::StatusOr<int64_t> EventStore::ExportImpressions(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  // Its own read connection: an export is rare and must not hold one of the pool's.
  auto db = OpenSqlite(options_.path, kWhat, /*serialized=*/false);
  if (!db.ok()) return db.status();
  struct Close {
    sqlite3* db;
    ~Close() { sqlite3_close(db); }
  } close{*db};
  int64_t lines = 0;
  auto each = [&](const char* sql, const std::function<void(sqlite3_stmt*)>& row) {
    SqlStatement st;
    if (sqlite3_prepare_v2(*db, sql, -1, &st.stmt, nullptr) != SQLITE_OK) {
      return SqlError(*db, kWhat, options_.path, "export impressions");
    }
    int rc;
    while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
      row(st.stmt);
      ++lines;
    }
    if (rc != SQLITE_DONE) return SqlError(*db, kWhat, options_.path, "export impressions");
    return absl::OkStatus();
  };
  auto col = [](sqlite3_stmt* st, int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
    return std::string(p != nullptr ? p : "");
  };
  absl::Status s = each(
      "SELECT id, user, route, model_version, variant, at_ms, items FROM impressions ORDER BY seq",
      [&](sqlite3_stmt* st) {
        nlohmann::ordered_json j;
        j["recommendation_id"] = col(st, 0);
        j["user"] = col(st, 1);
        j["route"] = col(st, 2);
        j["model_version"] = col(st, 3);
        j["variant"] = col(st, 4);
        j["at_ms"] = sqlite3_column_int64(st, 5);
        j["items"] = nlohmann::ordered_json::parse(col(st, 6), nullptr, false);
        out << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
      });
  if (!s.ok()) return s;
  s = each(
      "SELECT recommendation_id, user, item, type, position, model_version, variant, at_ms "
      "FROM attributions ORDER BY seq",
      [&](sqlite3_stmt* st) {
        nlohmann::ordered_json a;
        a["recommendation_id"] = col(st, 0);
        a["user"] = col(st, 1);
        a["item"] = col(st, 2);
        a["type"] = col(st, 3);
        a["position"] = sqlite3_column_int(st, 4);
        a["model_version"] = col(st, 5);
        a["variant"] = col(st, 6);
        a["at_ms"] = sqlite3_column_int64(st, 7);
        out << nlohmann::ordered_json{{"attribution", a}}.dump(
                   -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
            << '\n';
      });
  if (!s.ok()) return s;
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return lines;
}

}  // namespace recloop
