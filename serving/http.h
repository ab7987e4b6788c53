// Plain HTTP request/response values exchanged between the Beast server (http_server.cc, the
// only file that sees sockets) and the router (api.h). Keeping Boost.Beast out of this header
// keeps it out of every file that routes or tests routing, and makes the router a pure function
// that tests and the fuzz target call without a socket.
#ifndef RECLOOP_SERVING_HTTP_H_
#define RECLOOP_SERVING_HTTP_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recloop {

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // origin-form: path with an optional "?query"
  // Header fields as received; names compare case-insensitively (Header()).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // True if the request carried a Content-Length or Transfer-Encoding: chunked (a PUT/POST
  // without either gets 411 Length Required).
  bool has_length = false;
  // The peer's IP address ("203.0.113.7", "2001:db8::1"), set by the server from the socket;
  // empty when there is none (AnswerRequestBytes, tests calling the router directly).
  std::string remote_address;

  // The value of the first header field named `name` (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type (no body)
  std::string body;
  // Extra header fields, e.g. {"Allow", "GET"} or {"WWW-Authenticate", "Bearer"}.
  std::vector<std::pair<std::string, std::string>> headers;
  // Set by the router for responses after which the connection must not be reused.
  bool close = false;
  // The route template that answered (e.g. "/v1/items/{item}/similar"), a bounded label for
  // metrics and logs; "unmatched" when no route did.
  std::string route = "unmatched";
  // On a 429 from a rate limit: which one ("connection", "key" or "address"); else empty.
  std::string rate_limited_by;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_HTTP_H_
