#include "serving/cors.h"

#include <cctype>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace recloop {
namespace {

constexpr int kMaxMaxAgeSeconds = 86400;

// Debian's abseil has its own string_view.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Whether `origin` is the serialisation of an http(s) origin: "scheme://host[:port]", the host a
// DNS name, an IPv4 address or a bracketed IPv6 address, the port 1-65535.
bool IsOrigin(std::string_view origin) {
  std::string_view rest;
  if (absl::StartsWithIgnoreCase(Absl(origin), "https://")) {
    rest = origin.substr(8);
  } else if (absl::StartsWithIgnoreCase(Absl(origin), "http://")) {
    rest = origin.substr(7);
  } else {
    return false;
  }
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : rest.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    host = rest.substr(0, close + 1);
    rest.remove_prefix(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    port = rest.empty() ? rest : rest.substr(1);
    if (rest == ":") return false;
  } else {
    const size_t colon = rest.find(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || host.front() == '.' || host.front() == '-') return false;
    for (char c : host) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
    }
  }
  if (port.size() > 5) return false;
  int number = 0;
  for (char c : port) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    number = number * 10 + (c - '0');
  }
  return port.empty() || (number >= 1 && number <= 65535);
}

}  // namespace

absl::Status ValidateCorsOptions(const CorsOptions& options) {
  for (const std::string& origin : options.allowed_origins) {
    if (origin == "*") continue;
    if (!IsOrigin(origin)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CORS origin '", origin,
          "' is not \"*\" or scheme://host[:port] (http or https, no path or trailing slash, "
          "e.g. https://shop.example)"));
    }
  }
  if (options.max_age_seconds < 0 || options.max_age_seconds > kMaxMaxAgeSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("CORS max age must be 0-", kMaxMaxAgeSeconds, " seconds"));
  }
  return absl::OkStatus();
}

Cors::Cors(CorsOptions options) : max_age_seconds_(options.max_age_seconds) {
  for (std::string& origin : options.allowed_origins) {
    if (origin == "*") {
      any_origin_ = true;
    } else if (IsOrigin(origin)) {
      origins_.push_back(absl::AsciiStrToLower(origin));
    }
  }
}

std::optional<std::string_view> Cors::AllowedOrigin(const HttpRequest& request) const {
  if (!enabled()) return std::nullopt;
  const std::optional<std::string_view> origin = request.Header("Origin");
  if (!origin || !IsOrigin(*origin)) return std::nullopt;  // "null", "*", junk: never allowed
  if (any_origin_) return origin;
  for (const std::string& allowed : origins_) {
    if (absl::EqualsIgnoreCase(allowed, Absl(*origin))) return origin;
  }
  return std::nullopt;
}

std::optional<HttpResponse> Cors::Preflight(const HttpRequest& request,
                                            std::string_view methods) const {
  if (request.method != "OPTIONS" || !request.Header("Access-Control-Request-Method")) {
    return std::nullopt;
  }
  const std::optional<std::string_view> origin = AllowedOrigin(request);
  if (!origin) return std::nullopt;
  HttpResponse r;
  r.content_type.clear();  // no body, so no type
  r.status = 204;
  r.headers.emplace_back("Access-Control-Allow-Methods", std::string(methods));
  r.headers.emplace_back("Access-Control-Allow-Headers", std::string(kCorsAllowedHeaders));
  r.headers.emplace_back("Access-Control-Max-Age", absl::StrCat(max_age_seconds_));
  return r;  // Decorate, which every answer passes, adds the origin and Vary
}

void Cors::Decorate(const HttpRequest& request, HttpResponse* response) const {
  if (!enabled()) return;
  bool varied = false;
  for (auto& [name, value] : response->headers) {
    if (absl::EqualsIgnoreCase(name, "Vary")) {
      absl::StrAppend(&value, ", Origin");
      varied = true;
    }
  }
  if (!varied) response->headers.emplace_back("Vary", "Origin");
  if (const std::optional<std::string_view> origin = AllowedOrigin(request)) {
    response->headers.emplace_back("Access-Control-Allow-Origin", std::string(*origin));
    // A page reads only the safelisted headers unless told: Retry-After (429, 503) and
    // WWW-Authenticate (401) are the ones a client acts on.
    response->headers.emplace_back("Access-Control-Expose-Headers",
                                   "Retry-After, WWW-Authenticate");
  }
}

}  // namespace recloop
