#include "data/event_store.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/pg_event_store.h"
#include "data/sqlite_event_store.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

constexpr int kMaxIdBytes = 256;
constexpr int kMaxTypeBytes = 32;

// What is wrong with an ID field for the CSV the store exports, or "".
std::string IdError(const char* what, const std::string& s, int max_bytes) {
  if (s.empty()) return absl::StrCat("empty ", what);
  if (static_cast<int>(s.size()) > max_bytes) {
    return absl::StrCat(what, " longer than ", max_bytes, " bytes");
  }
  for (const unsigned char c : s) {
    if (c < 0x20 || c == ',' || c == 0x7f) {
      return absl::StrCat(what, " contains a comma or a control character");
    }
  }
  return "";
}

// A lock of this process, by name (TryLock of a store no other server shares).
class ProcessLock final : public StoreLock {
 public:
  static std::unique_ptr<StoreLock> TryTake(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu());
    if (!held().insert(name).second) return nullptr;
    return std::unique_ptr<StoreLock>(new ProcessLock(name));
  }
  ~ProcessLock() override {
    std::lock_guard<std::mutex> lock(mu());
    held().erase(name_);
  }

 private:
  explicit ProcessLock(std::string name) : name_(std::move(name)) {}
  static std::mutex& mu() {
    static std::mutex m;
    return m;
  }
  static std::set<std::string>& held() {
    static std::set<std::string> s;
    return s;
  }
  std::string name_;
};

}  // namespace

TypeWeights DefaultTypeWeights() {
  return {{"view", 1.0f}, {"click", 2.0f}, {"cart", 3.0f}, {"purchase", 5.0f}, {"dislike", -5.0f}};
}

std::string EventError(const Event& e) {
  if (std::string s = IdError("user", e.user, kMaxIdBytes); !s.empty()) return s;
  if (std::string s = IdError("item", e.item, kMaxIdBytes); !s.empty()) return s;
  if (std::string s = IdError("type", e.type, kMaxTypeBytes); !s.empty()) return s;
  if (!e.id.empty()) {
    if (std::string s = IdError("id", e.id, kMaxIdBytes); !s.empty()) return s;
  }
  if (e.value && !std::isfinite(*e.value)) return "value is not finite";
  if (e.timestamp < 0) return "timestamp before 1970";
  return "";
}

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const EventStoreOptions& options) {
  if (IsPostgresUrl(options.path)) return PgEventStore::Open(options);
  return SqliteEventStore::Open(options);
}

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::OpenExisting(const std::string& path) {
  if (!IsPostgresUrl(path) && !std::filesystem::exists(path)) {
    return absl::NotFoundError("no event store at " + path);
  }
  return Open({path});
}

bool EventStore::WaitForWrites(int64_t /*after_seq*/, int timeout_ms) const {
  std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
  return false;
}

absl::StatusOr<std::unique_ptr<StoreLock>> EventStore::TryLock(const std::string& name) {
  return ProcessLock::TryTake(absl::StrCat(id_, "/", name));
}

absl::StatusOr<int64_t> EventStore::ExportCsv(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  out << "user,item,type,value,timestamp\n";
  int64_t rows = 0;
  char value[32];
  const absl::Status s = ForEach(0, [&](const StoredEvent& e) {
    value[0] = 0;
    if (e.event.value) std::snprintf(value, sizeof(value), "%.9g", *e.event.value);
    out << e.event.user << ',' << e.event.item << ',' << e.event.type << ',' << value << ','
        << e.event.timestamp << '\n';
    ++rows;
    return static_cast<bool>(out);
  });
  if (!s.ok()) return s;
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return rows;
}

absl::StatusOr<int64_t> EventStore::ExportImpressions(const std::string& path) const {
  using json = nlohmann::ordered_json;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  auto line = [&out](const json& j) {
    out << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    return static_cast<bool>(out);
  };
  int64_t lines = 0;
  RETURN_IF_ERROR(ForEachImpression([&](const ImpressionRecord& r) {
    ++lines;
    return line(json{{"recommendation_id", r.id},
                     {"user", r.user},
                     {"route", r.route},
                     {"model_version", r.model_version},
                     {"variant", r.variant},
                     {"at_ms", r.at_ms},
                     {"items", json::parse(r.items, nullptr, false)}});
  }));
  RETURN_IF_ERROR(ForEachAttribution([&](const AttributionRecord& r) {
    ++lines;
    return line(json{{"attribution",
                      {{"recommendation_id", r.recommendation_id},
                       {"user", r.user},
                       {"item", r.item},
                       {"type", r.type},
                       {"position", r.position},
                       {"model_version", r.model_version},
                       {"variant", r.variant},
                       {"at_ms", r.at_ms}}}});
  }));
  out.close();
  if (!out) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return lines;
}

}  // namespace recloop
