#include "serving/http.h"

#include "absl/strings/match.h"

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

}  // namespace recloop
