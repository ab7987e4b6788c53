// Errors and body checks shared by the route handlers (serving/handlers/handlers.h).
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"
#include "serving/json_limits.h"

namespace recloop {

const std::string& RouteContext::param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  static const std::string* const kNone = new std::string();  // never reached by a table route
  return *kNone;
}

HttpResponse NoModel() {
  return JsonError(503, "no_model", "no model is loaded yet; train one into the models directory");
}

HttpResponse FeedbackDisabled() {
  return JsonError(404, "feedback_disabled",
                   "this server keeps no events (start it with --events PATH)");
}

HttpResponse BadRequest(const absl::Status& s, std::string_view code) {
  return JsonError(400, code, std::string(s.message()));
}

HttpResponse Internal(const absl::Status& s) {
  return JsonError(500, "internal", std::string(s.message()));
}

HttpResponse StoreUnavailable(const absl::Status& s) {
  HttpResponse r = JsonError(503, "store_unavailable", std::string(s.message()));
  // The database restarting or unreachable: a write retried with its event ids counts once.
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

HttpResponse Overloaded(const Overload& overload, int retry_after) {
  const char* what = overload.bound == "fold_backlog" ? "users waiting to be folded in"
                                                      : "writes waiting for the event store";
  HttpResponse r = JsonError(
      503, "overloaded",
      absl::StrCat("the server is behind on feedback (", what, ": ", overload.depth, ", bound ",
                   overload.limit, "); nothing of this request was stored, retry after ",
                   retry_after, " s"));
  r.headers.emplace_back("Retry-After", absl::StrCat(retry_after));
  return r;
}

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

std::optional<HttpResponse> RefuseJsonShape(const RouteContext& ctx, int64_t max_root_elements,
                                            std::string_view root_code,
                                            std::string_view root_what) {
  JsonLimits limits = ctx.options.json;
  limits.max_root_elements = max_root_elements;
  const std::optional<JsonShapeError> error = CheckJsonShape(ctx.request.body, limits);
  if (!error) return std::nullopt;
  switch (error->kind) {
    case JsonShapeError::kTooDeep:
      return JsonError(400, "json_too_deep", error->message);
    case JsonShapeError::kTooManyElements:
      return JsonError(400, "json_too_many_elements", error->message);
    case JsonShapeError::kTooManyRootElements:
      if (root_code.empty()) return JsonError(400, "json_too_many_elements", error->message);
      break;
  }
  const int64_t cap = max_root_elements > 0 ? max_root_elements : limits.max_elements;
  const std::string what(root_what);
  return JsonError(400, root_code,
                   absl::StrCat("at most ", cap, " ", what, " per request (the ", what, " cap)"));
}

}  // namespace recloop
