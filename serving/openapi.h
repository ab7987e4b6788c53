// The HTTP API's OpenAPI 3.1 contract, docs/openapi.yaml, compiled into the binary (by
// serving/CMakeLists.txt from serving/openapi.cc.in) so that an installed server answers
// GET /openapi.yaml without the source tree. tests/api/openapi_test.py checks the document
// against the running server.
#ifndef RECLOOP_SERVING_OPENAPI_H_
#define RECLOOP_SERVING_OPENAPI_H_

#include <string_view>

namespace recloop {

// The text of docs/openapi.yaml as it was when the binary was built (YAML, UTF-8).
std::string_view OpenApiYaml();

}  // namespace recloop

#endif  // RECLOOP_SERVING_OPENAPI_H_
