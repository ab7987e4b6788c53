#include "serving/api.h"

#include <openssl/crypto.h>
#include <uriparser/Uri.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "serving/storefront.h"

namespace recloop {
namespace {

using json = nlohmann::ordered_json;

// Bounds on client-supplied strings, so that one request cannot make the catalogue huge.
constexpr size_t kMaxIdBytes = 512;
constexpr size_t kMaxCategories = 100;
constexpr size_t kMaxTitleBytes = 1024;
constexpr int kMaxOffset = 100'000;

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

HttpResponse NoModel() {
  return JsonError(503, "no_model", "no model is loaded yet; train one into the models directory");
}

// Percent-decodes a path segment.
std::string Unescape(std::string_view s) {
  std::string out(s);
  if (out.empty()) return out;
  const char* end = uriUnescapeInPlaceExA(out.data(), URI_FALSE, URI_BR_DONT_TOUCH);
  out.resize(end - out.data());
  return out;
}

using QueryParams = std::vector<std::pair<std::string, std::string>>;

absl::StatusOr<QueryParams> ParseQuery(std::string_view query) {
  QueryParams out;
  if (query.empty()) return out;
  UriQueryListA* list = nullptr;
  int count = 0;
  if (uriDissectQueryMallocExA(&list, &count, query.data(), query.data() + query.size(), URI_TRUE,
                               URI_BR_DONT_TOUCH) != URI_SUCCESS) {
    return absl::InvalidArgumentError("malformed query string");
  }
  for (const UriQueryListA* p = list; p != nullptr; p = p->next) {
    out.emplace_back(p->key ? p->key : "", p->value ? p->value : "");
  }
  uriFreeQueryListA(list);
  return out;
}

// The parameters of a list route (recommendations, similar, popular). Errors: NotFound for a
// key the route does not take, InvalidArgument for a bad value.
struct ListParams {
  int n = 0;
  int offset = 0;
  std::vector<std::string> categories;
  std::vector<std::string> exclude;
  bool details = false;  // each item's title and categories from the catalogue
};

absl::StatusOr<ListParams> ParseListParams(const QueryParams& query, bool allow_exclude,
                                           const ApiOptions& options) {
  ListParams p;
  p.n = options.default_n;
  bool seen_n = false, seen_offset = false, seen_details = false;
  auto parse_int = [](const std::string& key, const std::string& value, int lo, int hi,
                      int* out) -> absl::Status {
    int v = 0;
    if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
      return absl::InvalidArgumentError(absl::StrCat("parameter '", key,
                                                     "' must be an integer in [", lo, ", ", hi,
                                                     "], got '", value, "'"));
    }
    *out = v;
    return absl::OkStatus();
  };
  for (const auto& [key, value] : query) {
    if (key == "n") {
      if (seen_n) return absl::InvalidArgumentError("parameter 'n' given twice");
      seen_n = true;
      if (auto s = parse_int(key, value, 1, options.max_n, &p.n); !s.ok()) return s;
    } else if (key == "offset") {
      if (seen_offset) return absl::InvalidArgumentError("parameter 'offset' given twice");
      seen_offset = true;
      if (auto s = parse_int(key, value, 0, kMaxOffset, &p.offset); !s.ok()) return s;
    } else if (key == "category") {
      if (value.empty()) return absl::InvalidArgumentError("parameter 'category' is empty");
      p.categories.push_back(value);
    } else if (key == "details") {
      if (seen_details) return absl::InvalidArgumentError("parameter 'details' given twice");
      seen_details = true;
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter 'details' must be true or false, got '", value, "'"));
      }
      p.details = value == "true";
    } else if (key == "exclude" && allow_exclude) {
      for (absl::string_view id : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        p.exclude.emplace_back(id);
      }
    } else {
      // NotFound: the key is not one of this route's parameters (400 unknown_parameter).
      return absl::NotFoundError(absl::StrCat("unknown query parameter '", key, "'"));
    }
  }
  return p;
}

// Filters of a list request in the snapshot's indices. Unknown category names match no item;
// unknown excluded items are ignored.
RecommendOptions ToRecommendOptions(const ListParams& p, const ModelSnapshot& s,
                                    int ef_search) {
  RecommendOptions o;
  o.ef_search = ef_search;
  o.n = p.n;
  o.offset = p.offset;
  for (const auto& name : p.categories) {
    o.categories.push_back(s.categories->Find(name).value_or(-1));
  }
  for (const auto& id : p.exclude) {
    if (const auto i = s.model->items.Find(id)) o.exclude.push_back(*i);
  }
  return o;
}

// With `live`, each item also carries its catalogue title and categories (?details=true).
json ItemsJson(const ModelSnapshot& s, const std::vector<Recommendation>& recs,
               const LiveModel* live) {
  json items = json::array();
  for (const auto& r : recs) {
    const std::string& id = s.model->items.External(r.item);
    json item = {{"item", id}, {"score", r.score}, {"source", std::string(ToString(r.source))}};
    if (live != nullptr) {
      const std::optional<CatalogEntry> entry = live->GetItem(id);
      item["title"] = entry ? entry->title : "";
      item["categories"] = entry ? entry->categories : std::vector<std::string>{};
    }
    items.push_back(std::move(item));
  }
  return items;
}

// 411 for a write without a length, 415 for a body that is not JSON; nothing for a good one.
std::optional<HttpResponse> RefuseNonJsonBody(const HttpRequest& request) {
  if (!request.has_length) {
    return JsonError(411, "length_required",
                     absl::StrCat("a ", request.method, " needs a Content-Length"));
  }
  const auto type = request.Header("Content-Type");
  if (!type || !absl::StartsWithIgnoreCase(absl::string_view(type->data(), type->size()),
                                           "application/json")) {
    return JsonError(415, "unsupported_media_type",
                     "the body must be JSON (Content-Type: application/json)");
  }
  return std::nullopt;
}

HttpResponse FeedbackDisabled() {
  return JsonError(404, "feedback_disabled",
                   "this server keeps no events (start it with --events PATH)");
}

HttpResponse BadRequest(const absl::Status& s, std::string_view code = "bad_parameter") {
  return JsonError(400, code, std::string(s.message()));
}

HttpResponse Internal(const absl::Status& s) {
  return JsonError(500, "internal", std::string(s.message()));
}

HttpResponse MethodNotAllowed(std::string_view allow) {
  HttpResponse r = JsonError(405, "method_not_allowed",
                             absl::StrCat("this route answers ", std::string(allow)));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

bool KeyMatches(const HttpRequest& request, const std::string& key) {
  const auto header = request.Header("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (!header || header->size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(header->data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return false;
  }
  const std::string_view given = header->substr(kScheme.size());
  if (given.size() != key.size()) return false;  // the length of a key is not its secret
  return CRYPTO_memcmp(given.data(), key.data(), key.size()) == 0;
}

HttpResponse Unauthorized() {
  HttpResponse r = JsonError(401, "unauthorized", "this route needs Authorization: Bearer <key>");
  r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

json EntryJson(const std::string& item, bool in_model, const CatalogEntry& e) {
  return {{"item", item},
          {"in_model", in_model},
          {"title", e.title},
          {"categories", e.categories},
          {"available", e.available}};
}

}  // namespace

Api::Api(LiveModel* live, Metrics* metrics, ApiOptions options,
         std::function<int64_t()> connections, EventStore* events, FeedbackFolder* folder,
         Retrainer* retrainer)
    : live_(live),
      metrics_(metrics),
      options_(std::move(options)),
      connections_(std::move(connections)),
      events_(events),
      own_folder_(folder != nullptr ? nullptr
                                    : std::make_unique<FeedbackFolder>(
                                          live, events, options_.feedback, options_.fold_threads,
                                          metrics)),
      folder_(folder != nullptr ? folder : own_folder_.get()),
      retrainer_(retrainer) {}

HttpResponse Api::Handle(const HttpRequest& request) const {
  try {
    return Route(request);
  } catch (const std::exception& e) {
    // Nothing below should throw; if it does, the client gets a JSON 500, never a dropped
    // connection, and the server keeps serving.
    return JsonError(500, "internal", e.what());
  }
}

HttpResponse Api::Route(const HttpRequest& request) const {
  const std::string_view target = request.target;
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  if (path.empty() || path.front() != '/') {
    return JsonError(400, "bad_request", "the request target must be an absolute path");
  }
  std::vector<std::string> seg;
  for (absl::string_view s : absl::StrSplit(absl::string_view(path.data() + 1, path.size() - 1),
                                            '/')) {
    seg.push_back(Unescape(std::string_view(s.data(), s.size())));
  }
  const std::string& method = request.method;
  const bool is_get = method == "GET";
  auto route = [&](std::string_view name, HttpResponse r) {
    r.route = std::string(name);
    return r;
  };
  auto needs_key = [&](bool write) {
    return !options_.api_key.empty() && (write || options_.auth_reads) &&
           !KeyMatches(request, options_.api_key);
  };

  // The storefront page: static, public (it asks for a key itself when the API needs one).
  if (const std::optional<StaticFile> file = StorefrontFile(path)) {
    const std::string name = path == "/" ? "/" : "/{static}";
    if (!is_get) return route(name, MethodNotAllowed("GET"));
    HttpResponse r;
    r.content_type = std::string(file->content_type);
    r.body = std::string(file->body);
    r.headers.emplace_back("Cache-Control", "no-cache");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    return route(name, std::move(r));
  }

  // Routes without parameters in the path.
  if (seg.size() == 1 && (seg[0] == "healthz" || seg[0] == "readyz")) {
    const std::string name = "/" + seg[0];
    if (!is_get) return route(name, MethodNotAllowed("GET"));
    if (seg[0] == "healthz") return route(name, JsonResponse(200, {{"status", "ok"}}));
    const auto snap = live_->Get();
    if (snap == nullptr) return route(name, NoModel());
    return route(name, JsonResponse(200, {{"status", "ready"}, {"model_version", snap->version()}}));
  }
  if (seg.size() == 1 && seg[0] == "metrics") {
    if (!is_get) return route("/metrics", MethodNotAllowed("GET"));
    if (needs_key(false)) return route("/metrics", Unauthorized());
    const auto snap = live_->Get();
    std::vector<Metrics::Gauge> gauges;
    gauges.push_back({"recloop_model_loaded", "1 if a model is loaded", snap ? 1.0 : 0.0, ""});
    if (snap) {
      gauges.push_back({"recloop_model_info", "The live model version", 1.0,
                        absl::StrCat("version=\"", snap->version(), "\"")});
      gauges.push_back({"recloop_model_users", "Users of the live model",
                        static_cast<double>(snap->model->num_users()), ""});
      gauges.push_back({"recloop_model_items", "Items of the live model",
                        static_cast<double>(snap->model->num_items()), ""});
    }
    if (events_ != nullptr) {
      gauges.push_back({"recloop_feedback_fold_backlog",
                        "Users with acknowledged feedback not yet folded in",
                        static_cast<double>(folder_->backlog()), ""});
    }
    if (connections_) {
      gauges.push_back({"recloop_http_connections", "Open client connections",
                        static_cast<double>(connections_()), ""});
    }
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_->Render(gauges);
    if (retrainer_ != nullptr) r.body += retrainer_->RenderMetrics();
    return route("/metrics", std::move(r));
  }
  if (seg.empty() || seg[0] != "v1") return JsonError(404, "not_found", "no such route");

  // A page of the live model's customer IDs (for pickers such as the storefront page's).
  if (seg.size() == 2 && seg[1] == "users") {
    const std::string name = "/v1/users";
    if (!is_get) return route(name, MethodNotAllowed("GET"));
    if (needs_key(false)) return route(name, Unauthorized());
    const auto query = ParseQuery(raw_query);
    if (!query.ok()) return route(name, BadRequest(query.status()));
    auto params = ParseListParams(*query, /*allow_exclude=*/false, options_);
    if (!params.ok()) {
      const bool unknown = absl::IsNotFound(params.status());
      return route(name, BadRequest(params.status(), unknown ? "unknown_parameter" : "bad_parameter"));
    }
    if (!params->categories.empty() || params->details) {
      return route(name, JsonError(400, "unknown_parameter", "/v1/users takes n and offset only"));
    }
    const auto snap = live_->Get();
    if (snap == nullptr) return route(name, NoModel());
    const int64_t total = snap->model->num_users();
    json users = json::array();
    for (int64_t u = params->offset; u < std::min<int64_t>(total, params->offset + params->n); ++u) {
      users.push_back(snap->model->users.External(static_cast<int32_t>(u)));
    }
    return route(name, JsonResponse(200, {{"users", std::move(users)}, {"total", total}}));
  }

  if (seg.size() == 2 && seg[1] == "model") {
    if (!is_get) return route("/v1/model", MethodNotAllowed("GET"));
    if (needs_key(false)) return route("/v1/model", Unauthorized());
    if (!raw_query.empty()) {
      return route("/v1/model", JsonError(400, "unknown_parameter", "/v1/model takes no parameters"));
    }
    const auto snap = live_->Get();
    if (snap == nullptr) return route("/v1/model", NoModel());
    HttpResponse r;
    r.body = snap->metadata_json;
    return route("/v1/model", std::move(r));
  }

  if (seg.size() == 3 && seg[1] == "admin" && (seg[2] == "retrain" || seg[2] == "rollback")) {
    const std::string name = "/v1/admin/" + seg[2];
    const bool can_get = seg[2] == "retrain";
    if (method != "POST" && !(can_get && is_get)) {
      return route(name, MethodNotAllowed(can_get ? "GET, POST" : "POST"));
    }
    if (options_.api_key.empty()) {
      return route(name, JsonError(403, "admin_disabled",
                                   "admin routes need the server to be started with an API key"));
    }
    if (!KeyMatches(request, options_.api_key)) return route(name, Unauthorized());
    return route(name, Admin(request, seg[2], raw_query));
  }

  // Feedback and users.
  if (seg.size() == 2 && seg[0] == "v1" && seg[1] == "feedback") {
    const std::string name = "/v1/feedback";
    if (method != "POST") return route(name, MethodNotAllowed("POST"));
    if (needs_key(true)) return route(name, Unauthorized());
    if (!raw_query.empty()) {
      return route(name, JsonError(400, "unknown_parameter", "this route takes no parameters"));
    }
    return route(name, PostFeedback(request));
  }
  if (seg.size() == 4 && seg[0] == "v1" && seg[1] == "users" && seg[3] == "feedback") {
    const std::string name = "/v1/users/{user}/feedback";
    if (!is_get) return route(name, MethodNotAllowed("GET"));
    if (needs_key(false)) return route(name, Unauthorized());
    if (seg[2].empty() || seg[2].size() > kMaxIdBytes) {
      return route(name, JsonError(400, "bad_parameter", "the user ID is empty or too long"));
    }
    return route(name, UserFeedback(seg[2], raw_query));
  }
  if (seg.size() == 3 && seg[0] == "v1" && seg[1] == "users") {
    const std::string name = "/v1/users/{user}";
    if (method != "DELETE") return route(name, MethodNotAllowed("DELETE"));
    if (needs_key(true)) return route(name, Unauthorized());
    if (seg[2].empty() || seg[2].size() > kMaxIdBytes) {
      return route(name, JsonError(400, "bad_parameter", "the user ID is empty or too long"));
    }
    if (!raw_query.empty()) {
      return route(name, JsonError(400, "unknown_parameter", "this route takes no parameters"));
    }
    return route(name, EraseUser(seg[2]));
  }

  // List routes: recommendations, similar, popular.
  const bool is_recs = seg.size() == 4 && seg[1] == "users" && seg[3] == "recommendations";
  const bool is_similar = seg.size() == 4 && seg[1] == "items" && seg[3] == "similar";
  const bool is_popular = seg.size() == 2 && seg[1] == "popular";
  if (is_recs || is_similar || is_popular) {
    const std::string name = is_recs      ? "/v1/users/{user}/recommendations"
                             : is_similar ? "/v1/items/{item}/similar"
                                          : "/v1/popular";
    if (!is_get) return route(name, MethodNotAllowed("GET"));
    if (needs_key(false)) return route(name, Unauthorized());
    if ((is_recs || is_similar) && (seg[2].empty() || seg[2].size() > kMaxIdBytes)) {
      return route(name, JsonError(400, "bad_parameter", "the ID in the path is empty or too long"));
    }
    auto query = ParseQuery(raw_query);
    if (!query.ok()) return route(name, BadRequest(query.status()));
    auto params = ParseListParams(*query, /*allow_exclude=*/!is_popular, options_);
    if (!params.ok()) {
      const bool unknown = absl::IsNotFound(params.status());
      return route(name, BadRequest(params.status(), unknown ? "unknown_parameter" : "bad_parameter"));
    }
    // Read-your-writes: the user's acknowledged feedback is folded in before answering.
    if (is_recs) folder_->EnsureFresh(seg[2]);
    const auto snap = live_->Get();
    if (snap == nullptr) return route(name, NoModel());
    const RecommendOptions options = ToRecommendOptions(*params, *snap, options_.ef_search);
    json out;
    absl::StatusOr<std::vector<Recommendation>> recs;
    if (is_similar) {
      const auto item = snap->model->items.Find(seg[2]);
      if (!item) {
        return route(name, JsonError(404, "unknown_item",
                                     absl::StrCat("item '", seg[2], "' is not in the model")));
      }
      if (!snap->model->has_factors()) {
        return route(name, JsonError(404, "no_embeddings",
                                     "the live model has no item embeddings (popularity model)"));
      }
      recs = snap->recommender->Similar(*item, options);
      out["item"] = seg[2];
    } else if (is_recs) {
      // A user with fresh feedback is answered from their folded vector; an unknown user is a
      // new customer: popular items, with source "popular".
      const auto folded = folder_->overlay().Find(seg[2], snap->version());
      if (folded != nullptr) {
        recs = snap->recommender->RecommendForVector(folded->factors, folded->bias,
                                                     folded->seen, options);
      } else {
        const int32_t user = snap->model->users.Find(seg[2]).value_or(-1);
        recs = snap->recommender->Recommend(user, options);
      }
      out["user"] = seg[2];
    } else {
      recs = snap->recommender->Recommend(-1, options);
    }
    if (!recs.ok()) return route(name, Internal(recs.status()));
    out["model_version"] = snap->version();
    out["items"] = ItemsJson(*snap, *recs, params->details ? live_ : nullptr);
    return route(name, JsonResponse(200, out));
  }

  // The catalogue entry of one item.
  if (seg.size() == 3 && seg[1] == "items") {
    const std::string name = "/v1/items/{item}";
    const std::string& item = seg[2];
    const bool is_put = method == "PUT", is_delete = method == "DELETE";
    if (!is_get && !is_put && !is_delete) return route(name, MethodNotAllowed("GET, PUT, DELETE"));
    if (needs_key(!is_get)) return route(name, Unauthorized());
    if (item.empty() || item.size() > kMaxIdBytes) {
      return route(name, JsonError(400, "bad_parameter", "the item ID is empty or too long"));
    }
    if (!raw_query.empty()) {
      return route(name, JsonError(400, "unknown_parameter", "this route takes no parameters"));
    }
    const auto snap = live_->Get();
    const bool in_model = snap != nullptr && snap->model->items.Find(item).has_value();
    const std::optional<CatalogEntry> existing = live_->GetItem(item);
    if (is_get || is_delete) {
      if (!in_model && !existing) {
        return route(name, JsonError(404, "unknown_item",
                                     absl::StrCat("item '", item, "' is not known")));
      }
      CatalogEntry entry = existing.value_or(CatalogEntry{});
      if (is_delete) {
        entry.available = false;
        if (auto s = live_->SetItem(item, entry); !s.ok()) return route(name, Internal(s));
      }
      return route(name, JsonResponse(200, EntryJson(item, in_model, entry)));
    }
    // PUT: the body replaces the entry.
    if (auto refused = RefuseNonJsonBody(request)) return route(name, *std::move(refused));
    const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return route(name, JsonError(400, "bad_body", "the body must be one JSON object"));
    }
    CatalogEntry entry;
    if (body.contains("categories")) {
      const json& c = body["categories"];
      if (!c.is_array() || c.size() > kMaxCategories) {
        return route(name, JsonError(400, "bad_body",
                                     absl::StrCat("'categories' must be an array of at most ",
                                                  kMaxCategories, " strings")));
      }
      for (const auto& v : c) {
        if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
            v.get_ref<const std::string&>().size() > kMaxIdBytes) {
          return route(name, JsonError(400, "bad_body",
                                       "every category must be a non-empty string"));
        }
        entry.categories.push_back(v.get<std::string>());
      }
    }
    if (body.contains("title")) {
      const json& t = body["title"];
      if (!t.is_string() || t.get_ref<const std::string&>().size() > kMaxTitleBytes) {
        return route(name, JsonError(400, "bad_body",
                                     absl::StrCat("'title' must be a string of at most ",
                                                  kMaxTitleBytes, " bytes")));
      }
      entry.title = t.get<std::string>();
    }
    if (body.contains("available")) {
      if (!body["available"].is_boolean()) {
        return route(name, JsonError(400, "bad_body", "'available' must be true or false"));
      }
      entry.available = body["available"].get<bool>();
    }
    if (auto s = live_->SetItem(item, entry); !s.ok()) return route(name, Internal(s));
    return route(name, JsonResponse(200, EntryJson(item, in_model, *live_->GetItem(item))));
  }
  return JsonError(404, "not_found", "no such route");
}

HttpResponse Api::PostFeedback(const HttpRequest& request) const {
  if (events_ == nullptr) return FeedbackDisabled();
  if (auto refused = RefuseNonJsonBody(request)) return *std::move(refused);
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto parsed = ParseFeedback(request.body, options_.feedback, now);
  if (!parsed.ok()) return BadRequest(parsed.status(), "bad_body");
  AppendResult stored;
  if (!parsed->events.empty()) {
    auto appended = events_->Append(parsed->events);
    if (!appended.ok()) {
      if (absl::IsInvalidArgument(appended.status())) return BadRequest(appended.status(), "bad_body");
      return JsonError(503, "store_unavailable", std::string(appended.status().message()));
    }
    stored = *appended;
  }
  metrics_->CountFeedback(stored.stored + stored.duplicates,
                          static_cast<int64_t>(parsed->rejected.size()));
  if (retrainer_ != nullptr && stored.stored > 0) retrainer_->NoteEvents(parsed->events);
  // Durable: acknowledged. Each user of the batch is folded in again off this thread; their
  // next recommendation request waits for it if it has not happened yet.
  if (!parsed->events.empty()) {
    std::vector<std::string> users;
    for (const Event& e : parsed->events) users.push_back(e.user);
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
    folder_->Enqueue(users);
  }
  json out;
  out["accepted"] = stored.stored + stored.duplicates;
  out["duplicates"] = stored.duplicates;
  json rejected = json::array();
  for (const auto& [index, error] : parsed->rejected) {
    rejected.push_back({{"index", index}, {"error", error}});
  }
  out["rejected"] = std::move(rejected);
  return JsonResponse(200, out);
}

namespace {

json OutcomeJson(const RetrainOutcome& o) {
  json out;
  out["outcome"] = o.outcome;
  if (!o.version.empty()) out["version"] = o.version;
  out["parent_version"] = o.parent_version;
  out["message"] = o.message;
  out["new_events"] = o.new_events;
  out["seconds"] = o.seconds;
  out["finished"] = o.finished_utc;
  if (!o.gate.metric.empty()) {
    out["gate"] = {{"metric", o.gate.metric},   {"candidate", o.gate.candidate},
                   {"live", o.gate.live},       {"skipped", o.gate.skipped},
                   {"passed", o.gate.passed}};
  }
  return out;
}

}  // namespace

HttpResponse Api::Admin(const HttpRequest& request, const std::string& action,
                        std::string_view raw_query) const {
  if (retrainer_ == nullptr) {
    return JsonError(404, "retraining_disabled",
                     "this server has no retrainer (start it with --events)");
  }
  auto query = ParseQuery(raw_query);
  if (!query.ok()) return BadRequest(query.status());
  bool wait = false;
  for (const auto& [key, value] : *query) {
    if (action != "retrain" || request.method != "POST" || key != "wait") {
      return JsonError(400, "unknown_parameter", absl::StrCat("unknown parameter '", key, "'"));
    }
    if (value != "true" && value != "false") {
      return JsonError(400, "bad_parameter", "wait must be true or false");
    }
    wait = value == "true";
  }
  if (action == "rollback") {
    auto version = retrainer_->Rollback();
    if (absl::IsFailedPrecondition(version.status())) {
      return JsonError(409, "no_earlier_version", std::string(version.status().message()));
    }
    if (!version.ok()) return Internal(version.status());
    return JsonResponse(200, {{"model_version", *version}});
  }
  if (request.method == "GET") {
    const auto last = retrainer_->Last();
    json out;
    out["running"] = retrainer_->running();
    out["last"] = last ? OutcomeJson(*last) : json(nullptr);
    return JsonResponse(200, out);
  }
  auto outcome = retrainer_->RetrainNow(wait);
  if (absl::IsAlreadyExists(outcome.status())) {
    return JsonError(409, "retrain_running", std::string(outcome.status().message()));
  }
  if (!outcome.ok()) return JsonError(503, "stopping", std::string(outcome.status().message()));
  if (!outcome->has_value()) return JsonResponse(202, {{"status", "started"}});
  return JsonResponse(200, OutcomeJson(**outcome));
}

HttpResponse Api::UserFeedback(const std::string& user, std::string_view raw_query) const {
  if (events_ == nullptr) return FeedbackDisabled();
  auto query = ParseQuery(raw_query);
  if (!query.ok()) return BadRequest(query.status());
  int64_t limit = 1000;
  for (const auto& [key, value] : *query) {
    if (key != "limit") {
      return JsonError(400, "unknown_parameter", absl::StrCat("unknown parameter '", key, "'"));
    }
    if (!absl::SimpleAtoi(value, &limit) || limit < 1 || limit > 100'000) {
      return JsonError(400, "bad_parameter", "limit must be an integer in [1, 100000]");
    }
  }
  auto history = events_->UserEvents(user, limit);
  if (!history.ok()) return JsonError(503, "store_unavailable", std::string(history.status().message()));
  json events = json::array();
  for (const StoredEvent& se : *history) {
    json e;
    e["seq"] = se.seq;
    e["item"] = se.event.item;
    e["type"] = se.event.type;
    if (se.event.value) e["value"] = *se.event.value;
    e["timestamp"] = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(se.event.timestamp),
                                      absl::UTCTimeZone());
    if (!se.event.id.empty()) e["id"] = se.event.id;
    events.push_back(std::move(e));
  }
  json out;
  out["user"] = user;
  out["events"] = std::move(events);
  return JsonResponse(200, out);
}

HttpResponse Api::EraseUser(const std::string& user) const {
  if (events_ == nullptr) return FeedbackDisabled();
  // The folder deletes the events and publishes the erasure, ordered against folds in flight.
  auto erased = folder_->EraseUser(user);
  if (!erased.ok()) return JsonError(503, "store_unavailable", std::string(erased.status().message()));
  json out;
  out["user"] = user;
  out["erased_events"] = *erased;
  return JsonResponse(200, out);
}

}  // namespace recloop
