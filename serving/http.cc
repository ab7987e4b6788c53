#include "serving/http.h"

#include "absl/strings/match.h"
#include "nlohmann/json.hpp"

namespace recloop {

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(absl::string_view(key.data(), key.size()),
                               absl::string_view(name.data(), name.size()))) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

HttpResponse JsonError(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  const nlohmann::json body = {{"error", {{"code", code}, {"message", message}}}};
  // Messages may quote client input: invalid UTF-8 is replaced, never a reason to throw.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

}  // namespace recloop
