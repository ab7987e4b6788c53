// The server's request-to-response path without a socket, for the libFuzzer target
// (request_fuzzer.cc) and its regression test (tests/serving/fuzz_regression_test.cc): a small
// random model saved to a temporary directory, the live model, the API with an API key, and
// AnswerRequestBytes with the server's parser and limits. Check() answers raw bytes and tests
// what every answer must satisfy.
#ifndef RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_
#define RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "serving/api.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "serving/metrics.h"

namespace recloop::test {

// The API key the harness's server requires on write routes (seeds send it).
inline constexpr std::string_view kFuzzApiKey = "fuzz-key";

// Thread-compatible (one input at a time).
class RequestHarness {
 public:
  // Errors: the model's or the catalogue's.
  static absl::StatusOr<std::unique_ptr<RequestHarness>> Create();
  ~RequestHarness();

  // Answers `raw` as a server session would and checks every response in the answer: it parses
  // as HTTP/1.1; its status is below 500 (the model is loaded, so nothing may fail on the server
  // side); a JSON content type has a body that parses; an error carries
  // {"error":{"code","message"}}; nothing follows a response that closes the connection.
  // Returns "" if all hold, else what did not.
  std::string Check(std::string_view raw);

  // The responses' bytes of the last Check (for tests).
  const std::string& last_answer() const { return last_answer_; }

 private:
  RequestHarness() = default;

  std::filesystem::path dir_;
  std::unique_ptr<LiveModel> live_;
  Metrics metrics_;
  std::unique_ptr<Api> api_;
  HttpServerOptions options_;
  std::string last_answer_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_
