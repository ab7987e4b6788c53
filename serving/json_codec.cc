#include "serving/json_codec.h"

#include <cmath>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

// Keys keep the order they are written in.
using json = nlohmann::ordered_json;

std::string Dump(const json& j) {
  // IDs come from clients and files: invalid UTF-8 is replaced rather than thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

json OutcomeObject(const RetrainOutcome& o) {
  json out;
  out["outcome"] = o.outcome;
  if (!o.version.empty()) out["version"] = o.version;
  out["parent_version"] = o.parent_version;
  out["message"] = o.message;
  out["new_events"] = o.new_events;
  out["seconds"] = o.seconds;
  out["finished"] = o.finished_utc;
  if (!o.gate.metric.empty()) {
    out["gate"] = {{"metric", o.gate.metric},
                   {"candidate", o.gate.candidate},
                   {"live", o.gate.live},
                   {"skipped", o.gate.skipped},
                   {"passed", o.gate.passed}};
  }
  return out;
}

}  // namespace

HttpResponse JsonError(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, {{"error", {{"code", code}, {"message", message}}}});
}

HttpResponse StatusJson(int http_status, std::string_view status,
                        std::optional<std::string_view> model_version) {
  json out = {{"status", status}};
  if (model_version) out["model_version"] = *model_version;
  return JsonResponse(http_status, out);
}

HttpResponse ModelVersionJson(std::string_view version) {
  return JsonResponse(200, {{"model_version", version}});
}

HttpResponse UsersJson(std::span<const std::string> users, int64_t total) {
  json list = json::array();
  for (const std::string& u : users) list.push_back(u);
  return JsonResponse(200, {{"users", std::move(list)}, {"total", total}});
}

HttpResponse ItemListJson(const ItemList& list) {
  json items = json::array();
  for (const ListedItem& r : list.items) {
    json item = {{"item", r.item}, {"score", r.score}, {"source", r.source}};
    if (list.details) {
      item["title"] = r.title;
      item["categories"] = r.categories;
    }
    if (list.predicted_rating) {
      // A non-finite prediction (a damaged head) is sent as unknown, not as invalid JSON.
      if (r.predicted_rating && std::isfinite(*r.predicted_rating)) {
        item["predicted_rating"] = *r.predicted_rating;
      } else {
        item["predicted_rating"] = nullptr;
      }
    }
    items.push_back(std::move(item));
  }
  json out;
  if (!list.subject_key.empty()) out[std::string(list.subject_key)] = list.subject;
  out["model_version"] = list.model_version;
  out["items"] = std::move(items);
  return JsonResponse(200, out);
}

HttpResponse CatalogEntryJson(std::string_view item, bool in_model, const CatalogEntry& e) {
  return JsonResponse(200, {{"item", item},
                            {"in_model", in_model},
                            {"title", e.title},
                            {"categories", e.categories},
                            {"available", e.available}});
}

HttpResponse FeedbackAckJson(int64_t accepted, int64_t duplicates,
                             std::span<const std::pair<int, std::string>> rejected) {
  json out;
  out["accepted"] = accepted;
  out["duplicates"] = duplicates;
  json list = json::array();
  for (const auto& [index, error] : rejected) list.push_back({{"index", index}, {"error", error}});
  out["rejected"] = std::move(list);
  return JsonResponse(200, out);
}

HttpResponse UserEventsJson(std::string_view user, std::span<const StoredEvent> history) {
  json events = json::array();
  for (const StoredEvent& se : history) {
    json e;
    e["seq"] = se.seq;
    e["item"] = se.event.item;
    e["type"] = se.event.type;
    if (se.event.value) e["value"] = *se.event.value;
    e["timestamp"] = absl::FormatTime(
        "%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(se.event.timestamp), absl::UTCTimeZone());
    if (!se.event.id.empty()) e["id"] = se.event.id;
    events.push_back(std::move(e));
  }
  json out;
  out["user"] = user;
  out["events"] = std::move(events);
  return JsonResponse(200, out);
}

HttpResponse ErasedUserJson(std::string_view user, int64_t erased_events) {
  json out;
  out["user"] = user;
  out["erased_events"] = erased_events;
  return JsonResponse(200, out);
}

HttpResponse RetrainStateJson(bool running, const std::optional<RetrainOutcome>& last) {
  json out;
  out["running"] = running;
  out["last"] = last ? OutcomeObject(*last) : json(nullptr);
  return JsonResponse(200, out);
}

HttpResponse RetrainOutcomeJson(const RetrainOutcome& outcome) {
  return JsonResponse(200, OutcomeObject(outcome));
}

}  // namespace recloop
