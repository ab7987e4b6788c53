// JSON bodies are checked for their shape before they are parsed: nlohmann::json builds a DOM of
// 16 bytes a value plus a heap node per array, object and string, so a 1 MiB body of `[[[[...`
// or of `[0,0,0,...` would cost many times its size (and deep nesting, recursion depth) before
// a handler could look at it. CheckJsonShape scans the text once, in constant memory, and
// refuses nesting deeper, or an array or object larger, than JsonLimits allow. It does not
// validate the JSON otherwise: the parser that runs after it does.
#ifndef RECLOOP_SERVING_JSON_LIMITS_H_
#define RECLOOP_SERVING_JSON_LIMITS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace recloop {

struct JsonLimits {
  // Deepest nesting of arrays and objects in a body (the outermost one is depth 1).
  int max_depth = 16;
  // Most elements (values or members) of any one array or object below the outermost one.
  int64_t max_elements = 10'000;
  // Most elements of the outermost array or object; 0 = max_elements. (POST /v1/feedback sets
  // its events cap here.)
  int64_t max_root_elements = 0;
};

struct JsonShapeError {
  enum Kind { kTooDeep, kTooManyElements, kTooManyRootElements };
  Kind kind;
  std::string message;  // names the cap and its value
};

// The first way `text` exceeds `limits`, or nullopt. Strings (and escaped quotes in them) are
// skipped; brackets that do not balance are left to the parser. Thread-safe; allocates nothing
// but the error.
std::optional<JsonShapeError> CheckJsonShape(std::string_view text, const JsonLimits& limits);

}  // namespace recloop

#endif  // RECLOOP_SERVING_JSON_LIMITS_H_
