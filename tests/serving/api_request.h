// Requests for the router tests that call Api::Handle without a socket, and the error code of
// their answers.
#ifndef RECLOOP_TESTS_SERVING_API_REQUEST_H_
#define RECLOOP_TESTS_SERVING_API_REQUEST_H_

#include <string>

#include "nlohmann/json.hpp"
#include "serving/http.h"

namespace recloop::test {

// `method` `target`; with `key`, as a bearer token; a non-empty body is sent as JSON, with its
// length.
inline HttpRequest ApiRequest(const std::string& method, const std::string& target,
                              const std::string& key = "", const std::string& body = "") {
  HttpRequest r;
  r.method = method;
  r.target = target;
  if (!key.empty()) r.headers.emplace_back("Authorization", "Bearer " + key);
  if (!body.empty()) {
    r.headers.emplace_back("Content-Type", "application/json");
    r.body = body;
    r.has_length = true;
  }
  return r;
}

// The "code" of an {"error":{"code",...}} body; "" for any other body.
inline std::string ErrorCode(const HttpResponse& r) {
  const nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.contains("error")) return "";
  return body["error"]["code"].get<std::string>();
}

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_SERVING_API_REQUEST_H_
