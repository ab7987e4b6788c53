// The server's request-to-response path without a socket, for the libFuzzer target
// (request_fuzzer.cc) and its regression test (tests/serving/fuzz_regression_test.cc): a small
// random model saved to a temporary directory, the live model, an event store with the one fold
// path, scoped API keys (one with every scope, one read-only, one feedback-only), admin routes
// over a retrain double (the real retrainer trains, far too slow per input), one CORS origin,
// small request caps, and
// AnswerRequestBytes with the server's parser and limits. Check() answers raw bytes and tests
// what every answer must satisfy.
#ifndef RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_
#define RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "data/event_store.h"
#include "serving/api.h"
#include "serving/api_keys.h"
#include "serving/feedback_folder.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "serving/metrics.h"

namespace recloop::test {

// The API keys of the harness's server (seeds send them): every scope, read only, feedback only.
inline constexpr std::string_view kFuzzApiKey = "fuzz-key";
inline constexpr std::string_view kFuzzReadKey = "fuzz-read";
inline constexpr std::string_view kFuzzFeedbackKey = "fuzz-feedback";
// The origin the harness's server allows (CORS).
inline constexpr std::string_view kFuzzOrigin = "https://shop.example";

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
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<FeedbackFolder> folder_;
  std::unique_ptr<RetrainControl> retrain_;
  std::unique_ptr<ApiKeys> keys_;
  std::unique_ptr<Api> api_;
  HttpServerOptions options_;
  std::string last_answer_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_FUZZ_REQUEST_HARNESS_H_
