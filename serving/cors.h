// Cors: which pages on other origins a browser lets call the API (Cross-Origin Resource Sharing,
// https://fetch.spec.whatwg.org/#http-cors-protocol), for a storefront served from its own site.
// Closed by default: with no origin configured no Access-Control-* header is ever sent, so a
// browser lets no other origin read an answer or send a non-simple request (JSON, a key).
//
// For an allowed origin the API answers
//   - a preflight (OPTIONS with Origin and Access-Control-Request-Method, on any route) with 204,
//     Access-Control-Allow-Origin: <that origin>, Access-Control-Allow-Methods: <the route's>,
//     Access-Control-Allow-Headers: Authorization, Content-Type (all the API reads),
//     Access-Control-Max-Age; without a key (browsers never send one on a preflight);
//   - every other request with Access-Control-Allow-Origin: <that origin>.
// The origin is echoed, never "*", and Access-Control-Allow-Credentials is never sent: keys
// travel in the Authorization header the page sets, not in cookies. Once any origin is
// configured every answer carries Vary: Origin, so a cache never hands one origin's answer to
// another. A disallowed origin gets no Access-Control-* header (its browser blocks the call).
#ifndef RECLOOP_SERVING_CORS_H_
#define RECLOOP_SERVING_CORS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "serving/http.h"

namespace recloop {

struct CorsOptions {
  // Origins whose pages may call the API, each "http(s)://host[:port]" as browsers send it in
  // the Origin header (e.g. "https://shop.example"; no path, no trailing slash), compared
  // case-insensitively. Default empty: none. "*" allows every http(s) origin (still echoed; never
  // "null", which sandboxed frames and local files send) and only when listed explicitly: then
  // any site its visitors open may call the API from their browsers with whatever key it has.
  std::vector<std::string> allowed_origins;
  // How long a browser may cache a preflight's approval (Access-Control-Max-Age), in seconds.
  // Default 600; at most 86400.
  int max_age_seconds = 600;
};

// The request headers a preflight approves: every header the API reads.
inline constexpr std::string_view kCorsAllowedHeaders = "Authorization, Content-Type";

// InvalidArgument naming the entry if an origin is neither "*" nor "http(s)://host[:port]" (a
// path, a trailing slash, "null", whitespace), or if max_age_seconds is outside [0, 86400].
absl::Status ValidateCorsOptions(const CorsOptions& options);

// Thread safety: immutable after construction; every method is const and may be called from any
// number of threads at once.
class Cors {
 public:
  // `options` should pass ValidateCorsOptions; an invalid origin simply never matches.
  explicit Cors(CorsOptions options);

  // Whether any origin is configured.
  bool enabled() const { return !origins_.empty() || any_origin_; }

  // The request's Origin if it may call the API, else nullopt (always without origins).
  std::optional<std::string_view> AllowedOrigin(const HttpRequest& request) const;

  // If `request` is a preflight from an allowed origin: its 204 approval, naming `methods` (the
  // route's, e.g. "GET, PUT"), to be passed through Decorate like every answer (which adds the
  // origin). Else nullopt: the caller answers as for any other OPTIONS.
  std::optional<HttpResponse> Preflight(const HttpRequest& request, std::string_view methods) const;

  // Adds Vary: Origin when enabled, and Access-Control-Allow-Origin for an allowed origin.
  void Decorate(const HttpRequest& request, HttpResponse* response) const;

 private:
  std::vector<std::string> origins_;  // lower-case, without "*"
  bool any_origin_ = false;           // "*" was listed
  int max_age_seconds_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_CORS_H_
