// The handlers of the HTTP API's routes, internal to serving/: serving/api.cc's route table
// names one per (method, path pattern) and calls it after matching, authenticating and checking
// the path's IDs and the query, so a handler does only its route's own work. Handlers are plain
// functions of a RouteContext (no socket, no Beast); their bodies are encoded by
// serving/json_codec.h.
//
//   lists.cc     recommendations, similar items, popular items, the page of users
//   catalog.cc   GET, PUT, DELETE /v1/items/{item}
//   feedback.cc  POST /v1/feedback, a user's events, a user's erasure
//   admin.cc     retrain, rollback
//   system.cc    /healthz, /readyz, /metrics, /v1/model, /openapi.yaml, the storefront page
//   common.cc    errors and body checks shared by the handlers
#ifndef RECLOOP_SERVING_HANDLERS_HANDLERS_H_
#define RECLOOP_SERVING_HANDLERS_HANDLERS_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "serving/api.h"
#include "serving/backpressure.h"
#include "serving/experiment.h"
#include "serving/http.h"

namespace recloop {

// The longest ID (user, item, category) a request may carry: one request cannot make the
// catalogue huge.
inline constexpr size_t kMaxIdBytes = 512;

// Who may call a route. The route table gives every route one scope; the dispatcher checks it
// against the request's credentials in one place (serving/api.cc Authorize).
enum class Scope {
  kPublic,    // anyone (/healthz, /readyz, the storefront page)
  kRead,      // the API key only with ApiOptions::auth_reads
  kFeedback,  // POST /v1/feedback: the key when one is configured
  kCatalog,   // PUT, DELETE /v1/items/{item}: the key when one is configured
  kUser,      // DELETE /v1/users/{user} (erasure): the key when one is configured
  kAdmin,     // the key, always (403 admin_disabled when none is configured)
};

// The path parameters a pattern captured, {name} -> percent-decoded value, in path order.
using PathParams = std::vector<std::pair<std::string_view, std::string>>;
// The query string's key-value pairs, decoded, in order (keys may repeat).
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// What a handler gets: the services and options of the Api and the request, matched.
struct RouteContext {
  const ApiServices& services;  // services.folder is never null here
  const ApiOptions& options;
  const HttpRequest& request;
  std::string_view path;     // as sent, not decoded
  const PathParams& params;  // each non-empty and at most kMaxIdBytes
  const QueryParams& query;  // empty for routes that take no query

  // The value of path parameter `name` (the pattern has it).
  const std::string& param(std::string_view name) const;
};

using Handler = HttpResponse (*)(const RouteContext& ctx);

// lists.cc
HttpResponse Recommendations(const RouteContext& ctx);
HttpResponse SimilarItems(const RouteContext& ctx);
HttpResponse PopularItems(const RouteContext& ctx);
HttpResponse UserPage(const RouteContext& ctx);
// experiments.cc
HttpResponse GetExperiments(const RouteContext& ctx);
// catalog.cc
HttpResponse GetItem(const RouteContext& ctx);
HttpResponse PutItem(const RouteContext& ctx);
HttpResponse DeleteItem(const RouteContext& ctx);
// feedback.cc
HttpResponse PostFeedback(const RouteContext& ctx);
HttpResponse UserFeedback(const RouteContext& ctx);
HttpResponse EraseUser(const RouteContext& ctx);
// admin.cc
HttpResponse GetRetrain(const RouteContext& ctx);
HttpResponse PostRetrain(const RouteContext& ctx);
HttpResponse PostRollback(const RouteContext& ctx);
// system.cc
HttpResponse Healthz(const RouteContext& ctx);
HttpResponse Readyz(const RouteContext& ctx);
HttpResponse MetricsText(const RouteContext& ctx);
HttpResponse ModelInfo(const RouteContext& ctx);
HttpResponse OpenApiDocument(const RouteContext& ctx);
HttpResponse StaticPage(const RouteContext& ctx);

// common.cc: errors shared by handlers.
HttpResponse NoModel();                                                 // 503 no_model
HttpResponse FeedbackDisabled();                                        // 404 feedback_disabled
HttpResponse BadRequest(const absl::Status& s, std::string_view code);  // 400 code
HttpResponse Internal(const absl::Status& s);                           // 500 internal
HttpResponse StoreUnavailable(const absl::Status& s);                   // 503 store_unavailable
// 503 overloaded naming the bound reached, with Retry-After: `retry_after` (whole seconds).
HttpResponse Overloaded(const Overload& overload, int retry_after);
// 411 for a write without a length, 415 for a body that is not JSON; nullopt for a good one.
std::optional<HttpResponse> RefuseNonJsonBody(const HttpRequest& request);
// 400 for a JSON body beyond ApiOptions::json, found before it is parsed: json_too_deep,
// json_too_many_elements, or `root_code` (if given) when its outermost array or object has more
// than `max_root_elements` (0: the JSON element cap) elements, `root_what` naming them.
std::optional<HttpResponse> RefuseJsonShape(const RouteContext& ctx, int64_t max_root_elements = 0,
                                            std::string_view root_code = "",
                                            std::string_view root_what = "");

}  // namespace recloop

#endif  // RECLOOP_SERVING_HANDLERS_HANDLERS_H_
