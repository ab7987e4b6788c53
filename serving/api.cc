#include "serving/api.h"

#include <uriparser/Uri.h>

#include <ctime>
#include <exception>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/logger.h"
#include "serving/api_keys.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"
#include "serving/storefront.h"

namespace recloop {
namespace {

// How a route treats the query string.
enum class Query {
  kTaken,     // parsed and handed to the handler, which refuses keys it does not know
  kRejected,  // the route takes no parameters: any query is a 400 unknown_parameter
  kIgnored,   // never looked at (health checks, /metrics, the page)
};

// One entry of the route table: a method of a path pattern.
struct Route {
  std::string_view method;
  // Segments separated by "/"; a segment "{name}" captures one decoded path segment, which the
  // dispatcher checks is a non-empty ID of at most kMaxIdBytes. The pattern is also the route's
  // name in metrics and logs (HttpResponse::route).
  std::string_view pattern;
  Scope scope;
  Query query;
  Handler handler;
  // If set, the pattern matches only the paths this accepts (the page's files).
  bool (*accepts)(std::string_view path) = nullptr;
};

bool IsStorefrontFile(std::string_view path) { return StorefrontFile(path).has_value(); }

// The route table. The first pattern that matches the path wins; a pattern's methods are listed
// together, in the order 405's Allow names them.
const Route kRoutes[] = {
    {"GET", "/", Scope::kPublic, Query::kIgnored, StaticPage},
    {"GET", "/healthz", Scope::kPublic, Query::kIgnored, Healthz},
    {"GET", "/readyz", Scope::kPublic, Query::kIgnored, Readyz},
    {"GET", "/openapi.yaml", Scope::kPublic, Query::kIgnored, OpenApiDocument},
    {"GET", "/metrics", Scope::kRead, Query::kIgnored, MetricsText},
    {"GET", "/v1/users", Scope::kRead, Query::kTaken, UserPage},
    {"GET", "/v1/model", Scope::kRead, Query::kRejected, ModelInfo},
    {"GET", "/v1/admin/retrain", Scope::kAdmin, Query::kRejected, GetRetrain},
    {"GET", "/v1/admin/experiments", Scope::kAdmin, Query::kRejected, GetExperiments},
    {"POST", "/v1/admin/retrain", Scope::kAdmin, Query::kTaken, PostRetrain},
    {"POST", "/v1/admin/rollback", Scope::kAdmin, Query::kRejected, PostRollback},
    {"POST", "/v1/feedback", Scope::kFeedback, Query::kRejected, PostFeedback},
    {"GET", "/v1/users/{user}/feedback", Scope::kRead, Query::kTaken, UserFeedback},
    {"DELETE", "/v1/users/{user}", Scope::kUser, Query::kRejected, EraseUser},
    {"GET", "/v1/users/{user}/recommendations", Scope::kRead, Query::kTaken, Recommendations},
    {"GET", "/v1/items/{item}/similar", Scope::kRead, Query::kTaken, SimilarItems},
    {"GET", "/v1/popular", Scope::kRead, Query::kTaken, PopularItems},
    {"GET", "/v1/items/{item}", Scope::kRead, Query::kRejected, GetItem},
    {"PUT", "/v1/items/{item}", Scope::kCatalog, Query::kRejected, PutItem},
    {"DELETE", "/v1/items/{item}", Scope::kCatalog, Query::kRejected, DeleteItem},
    {"GET", "/{static}", Scope::kPublic, Query::kIgnored, StaticPage, IsStorefrontFile},
};

// Percent-decodes a path segment.
std::string Unescape(std::string_view s) {
  std::string out(s);
  if (out.empty()) return out;
  const char* end = uriUnescapeInPlaceExA(out.data(), URI_FALSE, URI_BR_DONT_TOUCH);
  out.resize(end - out.data());
  return out;
}

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

// Whether the decoded path `segments` match `pattern`; *params receives the captures.
bool Matches(std::string_view pattern, const std::vector<std::string>& segments,
             PathParams* params) {
  params->clear();
  size_t i = 0;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(pattern.data() + 1, pattern.size() - 1), '/')) {
    if (i == segments.size()) return false;
    const std::string& segment = segments[i++];
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      params->emplace_back(std::string_view(part.data() + 1, part.size() - 2), segment);
    } else if (std::string_view(part.data(), part.size()) != segment) {
      return false;
    }
  }
  return i == segments.size();
}

// The secret of an "Authorization: Bearer <secret>" header, or nullopt.
std::optional<std::string_view> BearerSecret(const HttpRequest& request) {
  const auto header = request.Header("Authorization");
  constexpr std::string_view kScheme = "Bearer ";
  if (!header || header->size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(absl::string_view(header->data(), kScheme.size()),
                              absl::string_view(kScheme.data(), kScheme.size()))) {
    return std::nullopt;
  }
  return header->substr(kScheme.size());
}

// The key scope a route's scope needs.
uint32_t NeededScope(Scope scope) {
  switch (scope) {
    case Scope::kPublic:
      return 0;
    case Scope::kRead:
      return kScopeRead;
    case Scope::kFeedback:
      return kScopeFeedback;
    case Scope::kCatalog:
      return kScopeCatalog;
    case Scope::kUser:
      return kScopeErase;
    case Scope::kAdmin:
      return kScopeAdmin;
  }
  return kScopeAdmin;
}

std::string_view ScopeName(uint32_t scope) {
  switch (scope) {
    case kScopeRead:
      return "read";
    case kScopeFeedback:
      return "feedback";
    case kScopeCatalog:
      return "catalog";
    case kScopeErase:
      return "erase";
    default:
      return "admin";
  }
}

// The one place a route's scope meets the request's credentials: nullopt if the request may
// call a route of `scope`, else its 401 (missing or unknown key, with WWW-Authenticate) or 403
// (a key without the route's scope; an admin route on a server without keys). *caller receives
// the name of the key the request gave, when it was looked at and known.
std::optional<HttpResponse> Authorize(Scope scope, const HttpRequest& request,
                                      const ApiOptions& options, const ApiKeys& keys,
                                      std::string* caller) {
  if (scope == Scope::kPublic || (scope == Scope::kRead && !options.auth_reads)) {
    return std::nullopt;
  }
  if (!keys.enabled()) {
    if (scope != Scope::kAdmin) return std::nullopt;
    return JsonError(403, "admin_disabled",
                     "admin routes need the server to be started with an API key");
  }
  const std::optional<std::string_view> secret = BearerSecret(request);
  const std::optional<ApiKeys::Match> match =
      secret ? keys.Find(*secret) : std::optional<ApiKeys::Match>();
  if (!match) {
    HttpResponse r = JsonError(401, "unauthorized", "this route needs Authorization: Bearer <key>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  *caller = match->name;
  const uint32_t needed = NeededScope(scope);
  if ((match->scopes & needed) == 0) {
    return JsonError(403, "forbidden",
                     absl::StrCat("the key ", match->name, " has no ",
                                  std::string(ScopeName(needed)), " scope"));
  }
  return std::nullopt;
}

// Writes (catalogue, erasure) and admin calls leave an audit line.
bool Audited(Scope scope) {
  return scope == Scope::kCatalog || scope == Scope::kUser || scope == Scope::kAdmin;
}

void Audit(Logger* log, std::string_view caller, const Route& route, std::string_view path,
           int status) {
  char when[32] = "-";
  const std::time_t now = std::time(nullptr);
  std::tm utc;
  if (gmtime_r(&now, &utc) != nullptr) {
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &utc);
  }
  log->Info("audit key=%s time=%s route=\"%s %s\" target=%s status=%d",
            caller.empty() ? "-" : caller, when, route.method, route.pattern, path, status);
}

// The entry of `pattern` for `method`, or null; *allow receives the pattern's methods.
const Route* FindMethod(std::string_view pattern, std::string_view method, std::string* allow) {
  const Route* found = nullptr;
  for (const Route& r : kRoutes) {
    if (r.pattern != pattern) continue;
    if (r.method == method) found = &r;
    absl::StrAppend(allow, allow->empty() ? "" : ", ",
                    absl::string_view(r.method.data(), r.method.size()));
  }
  return found;
}

// 400 for a path ID that is empty (bad_parameter) or longer than kMaxIdBytes (id_too_long).
std::optional<HttpResponse> CheckPathIds(const PathParams& params) {
  for (const auto& [name, value] : params) {
    if (value.empty()) {
      return JsonError(400, "bad_parameter",
                       absl::StrCat("the ", std::string(name), " ID is empty"));
    }
    if (value.size() > kMaxIdBytes) {
      return JsonError(400, "id_too_long",
                       absl::StrCat("the ", std::string(name), " ID is longer than the ID cap, ",
                                    kMaxIdBytes, " bytes"));
    }
  }
  return std::nullopt;
}

// Routes no rate limit counts: health checks must answer however busy a client is.
bool Exempt(const Route& route) {
  return route.pattern == "/healthz" || route.pattern == "/readyz";
}

// 429 rate_limited with Retry-After (whole seconds).
HttpResponse RateLimited(std::string_view by, std::string_view message, int retry_after) {
  HttpResponse r = JsonError(429, "rate_limited", message);
  r.headers.emplace_back("Retry-After", absl::StrCat(retry_after));
  r.rate_limited_by = std::string(by);
  return r;
}

// The name of a route's scope in ApiRoutes (docs/openapi.yaml's x-recloop-scope).
std::string_view RouteScopeName(Scope scope) {
  return scope == Scope::kPublic ? "public" : ScopeName(NeededScope(scope));
}

}  // namespace

std::vector<ApiRoute> ApiRoutes() {
  std::vector<ApiRoute> out;
  for (const Route& r : kRoutes) {
    out.push_back(
        {std::string(r.method), std::string(r.pattern), std::string(RouteScopeName(r.scope))});
  }
  return out;
}

absl::Status Api::Validate(const ApiOptions& options) {
  if (auto s = RateLimiter::Validate(options.key_rate_limit); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("per-key ", s.message()));
  }
  if (auto s = RateLimiter::Validate(options.address_rate_limit); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("per-address ", s.message()));
  }
  if (options.json.max_depth < 1 || options.json.max_depth > 63 || options.json.max_elements < 1) {
    return absl::InvalidArgumentError(
        "JSON limits: max_depth must be in [1, 63] and max_elements >= 1");
  }
  if (options.max_exclude < 1 || options.max_categories < 1) {
    return absl::InvalidArgumentError("max_exclude and max_categories must be >= 1");
  }
  if (options.online_gate_every_ms < 1) {
    return absl::InvalidArgumentError("online_gate_every_ms must be >= 1");
  }
  return ValidateBackpressure(options.backpressure);
}

Api::Api(ApiServices services, ApiOptions options)
    : options_(std::move(options)),
      key_limiter_(std::make_unique<RateLimiter>(options_.key_rate_limit)),
      address_limiter_(std::make_unique<RateLimiter>(options_.address_rate_limit)),
      cors_(options_.cors),
      services_(std::move(services)) {
  if (services_.folder == nullptr) {
    own_folder_ = std::make_unique<FeedbackFolder>(
        services_.live, services_.events, options_.feedback, options_.fold, services_.metrics);
    services_.folder = own_folder_.get();
  }
  if (services_.keys == nullptr) {
    std::vector<ApiKey> keys;
    if (!options_.api_key.empty()) keys.push_back(LegacyApiKey(options_.api_key));
    own_keys_ = std::make_unique<ApiKeys>(!options_.api_key.empty(), std::move(keys));
    services_.keys = own_keys_.get();
  }
  if (services_.ranked_cache == nullptr) {
    own_ranked_cache_ = std::make_unique<RankedCache>(options_.ranked_cache);
    services_.ranked_cache = own_ranked_cache_.get();
  }
  if (services_.impressions == nullptr) {
    own_impressions_ = std::make_unique<ImpressionLog>(services_.events, options_.impressions);
    services_.impressions = own_impressions_.get();
  }
  if (services_.experiment != nullptr) {
    RetrainControl* retrain = services_.retrain;
    OnlineGate::Promote promote = nullptr;
    if (retrain != nullptr) {
      promote = [retrain](const std::string& version) { return retrain->Promote(version); };
    }
    gate_ = std::make_unique<OnlineGate>(services_.experiment, services_.impressions,
                                         std::move(promote),
                                         services_.log != nullptr ? services_.log : StderrLog(),
                                         std::chrono::milliseconds(options_.online_gate_every_ms));
  }
}

HttpResponse Api::Handle(const HttpRequest& request) const {
  HttpResponse response;
  try {
    response = Dispatch(request);
  } catch (const std::exception& e) {
    // Nothing below should throw; if it does, the client gets a JSON 500, never a dropped
    // connection, and the server keeps serving.
    response = JsonError(500, "internal", e.what());
  }
  // What every answer tells browsers: take the Content-Type as given, and CORS (serving/cors.h).
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (services_.follower != nullptr) {
    response.headers.emplace_back("Recloop-Seq", absl::StrCat(services_.follower->cursor()));
  }
  cors_.Decorate(request, &response);
  return response;
}

std::optional<HttpResponse> Api::LimitAddress(const HttpRequest& request) const {
  if (!address_limiter_->enabled()) return std::nullopt;
  const std::string address = ClientAddress(request, options_.trusted_proxies);
  if (address.empty() || (!options_.rate_limit_loopback && IsLoopbackAddress(address))) {
    return std::nullopt;
  }
  const RateLimiter::Decision d = address_limiter_->Admit(ClientAddressKey(address));
  if (d.allowed) return std::nullopt;
  services_.metrics->CountRateLimited("address");
  return RateLimited("address",
                     absl::StrCat("too many requests from this address (at most ",
                                  options_.address_rate_limit.rate, " a second)"),
                     d.retry_after_seconds);
}

std::optional<HttpResponse> Api::LimitKey(const HttpRequest& request,
                                          const std::string& caller) const {
  if (!key_limiter_->enabled()) return std::nullopt;
  std::string name = caller;
  if (name.empty() && services_.keys->enabled()) {
    // A route that needs no key: a valid key given anyway still counts against its limit.
    if (const auto secret = BearerSecret(request)) {
      if (const auto match = services_.keys->Find(*secret)) name = match->name;
    }
  }
  if (name.empty()) return std::nullopt;
  const RateLimiter::Decision d = key_limiter_->Admit(name);
  if (d.allowed) return std::nullopt;
  services_.metrics->CountRateLimited("key");
  return RateLimited("key",
                     absl::StrCat("too many requests with the key ", name, " (at most ",
                                  options_.key_rate_limit.rate, " a second)"),
                     d.retry_after_seconds);
}

HttpResponse Api::Dispatch(const HttpRequest& request) const {
  const std::string_view target = request.target;
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view raw_query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  if (path.empty() || path.front() != '/') {
    return JsonError(400, "bad_request", "the request target must be an absolute path");
  }
  std::vector<std::string> segments;
  for (absl::string_view s :
       absl::StrSplit(absl::string_view(path.data() + 1, path.size() - 1), '/')) {
    segments.push_back(Unescape(std::string_view(s.data(), s.size())));
  }
  PathParams params;
  const Route* matched = nullptr;
  for (const Route& r : kRoutes) {
    if (Matches(r.pattern, segments, &params) && (r.accepts == nullptr || r.accepts(path))) {
      matched = &r;
      break;
    }
  }
  // The per-address limit counts unmatched paths too (a scanner's), but never health checks.
  if (matched == nullptr || !Exempt(*matched)) {
    if (auto limited = LimitAddress(request)) {
      if (matched != nullptr) limited->route = std::string(matched->pattern);
      return *std::move(limited);
    }
  }
  if (matched == nullptr) return JsonError(404, "not_found", "no such route");

  const Route* route = nullptr;
  std::string caller;  // the name of the key the request gave, when Authorize looked at it
  auto answer = [&]() -> HttpResponse {
    std::string allow;
    route = FindMethod(matched->pattern, request.method, &allow);
    if (route == nullptr) {
      if (auto approved = cors_.Preflight(request, allow)) return *std::move(approved);
      HttpResponse r = JsonError(405, "method_not_allowed", "this route answers " + allow);
      r.headers.emplace_back("Allow", allow);
      return r;
    }
    if (auto denied = Authorize(route->scope, request, options_, *services_.keys, &caller)) {
      services_.metrics->CountAuth(caller, denied->status);
      return *std::move(denied);
    }
    if (!caller.empty()) services_.metrics->CountAuth(caller, 200);
    if (!Exempt(*route)) {
      if (auto limited = LimitKey(request, caller)) return *std::move(limited);
    }
    if (auto bad = CheckPathIds(params)) return *std::move(bad);
    QueryParams query;
    if (route->query == Query::kRejected && !raw_query.empty()) {
      return JsonError(400, "unknown_parameter", "this route takes no parameters");
    }
    if (route->query == Query::kTaken) {
      auto parsed = ParseQuery(raw_query);
      if (!parsed.ok()) return BadRequest(parsed.status(), "bad_parameter");
      query = *std::move(parsed);
    }
    return route->handler(RouteContext{services_, options_, request, path, params, query});
  };
  HttpResponse response = answer();
  response.route = std::string(matched->pattern);
  if (route != nullptr && Audited(route->scope) && services_.log != nullptr) {
    Audit(services_.log, caller, *route, path, response.status);
  }
  return response;
}

}  // namespace recloop
