// The catalogue entry of one item: GET, PUT (replace) and DELETE (mark unavailable)
// /v1/items/{item}.
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"

namespace recloop {
namespace {

constexpr size_t kMaxCategories = 100;
constexpr size_t kMaxTitleBytes = 1024;

// A PUT body, {"title","categories","available"} (each optional), as the entry it sets.
// Errors: InvalidArgument saying what is wrong (400 bad_body), OutOfRange for a category longer
// than the ID cap (400 id_too_long).
absl::StatusOr<CatalogEntry> ParseEntryBody(const std::string& text) {
  using json = nlohmann::json;
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::InvalidArgumentError("the body must be one JSON object");
  }
  CatalogEntry entry;
  if (body.contains("categories")) {
    const json& c = body["categories"];
    if (!c.is_array() || c.size() > kMaxCategories) {
      return absl::InvalidArgumentError(
          absl::StrCat("'categories' must be an array of at most ", kMaxCategories, " strings"));
    }
    for (const auto& v : c) {
      if (!v.is_string() || v.get_ref<const std::string&>().empty()) {
        return absl::InvalidArgumentError("every category must be a non-empty string");
      }
      if (v.get_ref<const std::string&>().size() > kMaxIdBytes) {
        return absl::OutOfRangeError(
            absl::StrCat("a category is longer than the ID cap, ", kMaxIdBytes, " bytes"));
      }
      entry.categories.push_back(v.get<std::string>());
    }
  }
  if (body.contains("title")) {
    const json& t = body["title"];
    if (!t.is_string() || t.get_ref<const std::string&>().size() > kMaxTitleBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("'title' must be a string of at most ", kMaxTitleBytes, " bytes"));
    }
    entry.title = t.get<std::string>();
  }
  if (body.contains("available")) {
    if (!body["available"].is_boolean()) {
      return absl::InvalidArgumentError("'available' must be true or false");
    }
    entry.available = body["available"].get<bool>();
  }
  return entry;
}

bool InModel(const LiveModel& live, const std::string& item) {
  const auto snap = live.Get();
  return snap != nullptr && snap->model->items.Find(item).has_value();
}

// GET and DELETE: the item's entry, or 404 for an item neither the model nor the catalogue
// knows; DELETE marks it unavailable first.
HttpResponse ReadEntry(const RouteContext& ctx, bool mark_unavailable) {
  LiveModel& live = *ctx.services.live;
  const std::string& item = ctx.param("item");
  const bool in_model = InModel(live, item);
  const std::optional<CatalogEntry> existing = live.GetItem(item);
  if (!in_model && !existing) {
    return JsonError(404, "unknown_item", absl::StrCat("item '", item, "' is not known"));
  }
  CatalogEntry entry = existing.value_or(CatalogEntry{});
  if (mark_unavailable) {
    entry.available = false;
    if (auto s = live.SetItem(item, entry); !s.ok()) return Internal(s);
  }
  return CatalogEntryJson(item, in_model, entry);
}

}  // namespace

HttpResponse GetItem(const RouteContext& ctx) { return ReadEntry(ctx, false); }

HttpResponse DeleteItem(const RouteContext& ctx) { return ReadEntry(ctx, true); }

// The body replaces the entry.
HttpResponse PutItem(const RouteContext& ctx) {
  LiveModel& live = *ctx.services.live;
  const std::string& item = ctx.param("item");
  const bool in_model = InModel(live, item);
  if (auto refused = RefuseNonJsonBody(ctx.request)) return *std::move(refused);
  if (auto refused = RefuseJsonShape(ctx)) {
    return *std::move(refused);
  }
  auto entry = ParseEntryBody(ctx.request.body);
  if (!entry.ok()) {
    return BadRequest(entry.status(),
                      absl::IsOutOfRange(entry.status()) ? "id_too_long" : "bad_body");
  }
  if (auto s = live.SetItem(item, *std::move(entry)); !s.ok()) return Internal(s);
  return CatalogEntryJson(item, in_model, *live.GetItem(item));
}

}  // namespace recloop
