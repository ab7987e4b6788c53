#include "serving/json_limits.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace recloop {

std::optional<JsonShapeError> CheckJsonShape(std::string_view text, const JsonLimits& limits) {
  // Per open container: the elements seen so far (commas + 1 once a value has started). Only
  // the innermost count is needed at a time beside the root's, so the scan keeps a fixed stack.
  constexpr int kStack = 64;
  std::array<int64_t, kStack> elements{};
  std::array<bool, kStack> started{};
  const int max_depth = limits.max_depth < kStack ? limits.max_depth : kStack - 1;
  const int64_t root_cap =
      limits.max_root_elements > 0 ? limits.max_root_elements : limits.max_elements;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  auto over = [&](int d, int64_t n) -> std::optional<JsonShapeError> {
    if (d == 1 && n > root_cap) {
      return JsonShapeError{JsonShapeError::kTooManyRootElements,
                            absl::StrCat("the body's outermost array or object has more than ",
                                         root_cap, " elements")};
    }
    if (d > 1 && n > limits.max_elements) {
      return JsonShapeError{JsonShapeError::kTooManyElements,
                            absl::StrCat("a JSON array or object has more than ",
                                         limits.max_elements, " elements (the element cap)")};
    }
    return std::nullopt;
  };
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (depth > 0 && !started[depth] && c != ']' && c != '}') {
      started[depth] = true;
      elements[depth] = 1;
      if (auto e = over(depth, 1)) return e;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return JsonShapeError{
              JsonShapeError::kTooDeep,
              absl::StrCat("JSON nested deeper than ", max_depth, " levels (the nesting cap)")};
        }
        elements[depth] = 0;
        started[depth] = false;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      case ',':
        if (depth > 0) {
          if (auto e = over(depth, ++elements[depth])) return e;
        }
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

}  // namespace recloop
