#include "serving/feedback.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "engine/fold_in.h"
#include "nlohmann/json.hpp"

namespace recloop {

using json = nlohmann::json;

namespace {

// What is wrong with one event object, or "" (filling `e`).
std::string ParseEvent(const json& j, const FeedbackOptions& options, int64_t now, Event* e,
                       std::string* recommendation_id) {
  if (!j.is_object()) return "an event must be a JSON object";
  auto text = [&j](const char* key, std::string* out) -> std::string {
    const auto it = j.find(key);
    if (it == j.end()) return absl::StrCat("missing \"", key, "\"");
    if (!it->is_string()) return absl::StrCat("\"", key, "\" must be a string");
    *out = it->get<std::string>();
    return "";
  };
  if (std::string s = text("user", &e->user); !s.empty()) return s;
  if (std::string s = text("item", &e->item); !s.empty()) return s;
  if (std::string s = text("type", &e->type); !s.empty()) return s;
  const bool is_rating = e->type == "rating";
  if (!is_rating && options.type_weights.find(e->type) == options.type_weights.end()) {
    std::string known = "rating";
    for (const auto& [type, weight] : options.type_weights) absl::StrAppend(&known, ", ", type);
    return absl::StrCat("unknown type \"", e->type, "\" (known: ", known, ")");
  }
  if (const auto it = j.find("value"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) return "\"value\" must be a number";
    const double v = it->get<double>();
    if (!std::isfinite(v) || std::abs(v) > 1e9) return "\"value\" must be a finite number";
    e->value = static_cast<float>(v);
  } else if (is_rating) {
    return "a rating needs a \"value\"";
  }
  e->timestamp = now;
  if (const auto it = j.find("timestamp"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      e->timestamp = it->get<int64_t>();
    } else if (it->is_string()) {
      absl::Time t;
      std::string error;
      if (!absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &t, &error)) {
        return "\"timestamp\" must be ISO 8601 like 2026-01-02T03:04:05Z or integer seconds";
      }
      e->timestamp = absl::ToUnixSeconds(t);
    } else {
      return "\"timestamp\" must be ISO 8601 like 2026-01-02T03:04:05Z or integer seconds";
    }
  }
  if (const auto it = j.find("id"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return "\"id\" must be a string";
    e->id = it->get<std::string>();
  }
  if (const auto it = j.find("recommendation_id"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > 64) {
      return "\"recommendation_id\" must be a string of at most 64 bytes";
    }
    *recommendation_id = it->get<std::string>();
  }
  return EventError(*e);
}

}  // namespace

absl::StatusOr<ParsedFeedback> ParseFeedbackBody(std::string_view body,
                                                 const FeedbackOptions& options,
                                                 int64_t now_seconds) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("the body is not valid JSON");
  if (!j.is_array()) return absl::InvalidArgumentError("the body must be a JSON array of events");
  if (static_cast<int64_t>(j.size()) > options.max_events_per_request) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", options.max_events_per_request,
                                                   " events per request, got ", j.size()));
  }
  ParsedFeedback out;
  for (size_t i = 0; i < j.size(); ++i) {
    Event e;
    std::string recommendation_id;
    if (std::string error = ParseEvent(j[i], options, now_seconds, &e, &recommendation_id);
        !error.empty()) {
      out.rejected.emplace_back(static_cast<int>(i), std::move(error));
    } else {
      out.events.push_back(std::move(e));
      out.indices.push_back(static_cast<int>(i));
      out.recommendation_ids.push_back(std::move(recommendation_id));
    }
  }
  return out;
}

UserOverlay::Shard& UserOverlay::ShardOf(const std::string& user) const {
  return shards_[std::hash<std::string>{}(user) % shards_.size()];
}

std::shared_ptr<const FoldedUserEntry> UserOverlay::Find(const std::string& user,
                                                         const std::string& model_version) const {
  Shard& s = ShardOf(user);
  std::lock_guard<std::mutex> lock(s.mu);
  const auto it = s.users.find(user);
  if (it == s.users.end()) return nullptr;
  for (const auto& entry : it->second) {
    if (entry->model_version == model_version) return entry;
  }
  return nullptr;
}

void UserOverlay::Put(const std::string& user, std::shared_ptr<const FoldedUserEntry> entry) {
  Shard& s = ShardOf(user);
  std::lock_guard<std::mutex> lock(s.mu);
  Entries& entries = s.users[user];
  for (auto& slot : entries) {
    if (slot->model_version != entry->model_version) continue;
    if (slot->through_seq <= entry->through_seq) slot = std::move(entry);
    return;
  }
  if (entries.size() >= 2) entries.erase(entries.begin());
  entries.push_back(std::move(entry));
}

void UserOverlay::Erase(const std::string& user) {
  Shard& s = ShardOf(user);
  std::lock_guard<std::mutex> lock(s.mu);
  s.users.erase(user);
}

void UserOverlay::KeepOnly(const std::string& model_version) {
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto it = s.users.begin(); it != s.users.end();) {
      Entries& entries = it->second;
      std::erase_if(entries, [&](const auto& e) { return e->model_version != model_version; });
      if (entries.empty()) {
        s.users.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

int64_t UserOverlay::size() const {
  int64_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [user, entries] : s.users) n += static_cast<int64_t>(entries.size());
  }
  return n;
}

absl::StatusOr<std::shared_ptr<const FoldedUserEntry>> FoldUser(
    const ModelSnapshot& snap, const std::string& user, const std::vector<StoredEvent>& events,
    const FeedbackOptions& options, int64_t through_seq, bool erased,
    const FoldedUserEntry* previous) {
  const FactorModel& m = *snap.model;
  if (!m.has_factors() || snap.fold_in == nullptr) {
    return absl::FailedPreconditionError("the live model has no factors to fold users into");
  }
  FoldHistory history(m);  // the model's training row first, then the events in log order
  std::vector<int32_t> seen;  // sorted and deduplicated at the end
  const auto u = erased ? std::nullopt : m.users.Find(user);
  if (u && *u < m.seen.rows()) {
    const auto items = m.seen.RowIndices(*u);
    const auto vals = m.seen.RowValues(*u);
    seen.reserve(items.size() + events.size());
    for (size_t j = 0; j < items.size(); ++j) history.Add(items[j], vals[j]);
    seen.assign(items.begin(), items.end());
  }
  auto entry = std::make_shared<FoldedUserEntry>();
  entry->model_version = snap.version();
  entry->erased = erased;
  entry->through_seq = through_seq;
  for (const StoredEvent& se : events) {
    entry->through_seq = std::max(entry->through_seq, se.seq);
    if (se.seq <= through_seq) continue;  // in the training row already
    const Event& e = se.event;
    const auto item = m.items.Find(e.item);
    if (!item) continue;  // an item the model does not know yet
    seen.push_back(*item);
    const auto value =
        EventValue(e, m.params.feedback, options.type_weights, RatingNeutralOf(m.params));
    if (value) history.Add(*item, *value);
  }
  // In item order: the fold's sums must not depend on the order the events arrived in.
  history.SortByItem();
  std::span<const float> start;
  if (previous != nullptr && previous->model_version == entry->model_version) {
    start = previous->factors;
  } else if (u && *u < m.user_factors.rows()) {
    start = std::span<const float>(m.user_factors.row(*u).data(), m.user_factors.cols());
  }
  auto folded = history.FoldWith(*snap.fold_in, start);
  if (!folded.ok()) return folded.status();
  if (!folded->cold_start) {
    entry->factors.assign(folded->factors.data(), folded->factors.data() + folded->factors.size());
    entry->bias = folded->bias;
  }
  std::sort(seen.begin(), seen.end());
  seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
  entry->seen = std::move(seen);
  entry->history_items.assign(history.items().begin(), history.items().end());
  entry->history_values.assign(history.values().begin(), history.values().end());
  return std::shared_ptr<const FoldedUserEntry>(std::move(entry));
}

}  // namespace recloop
