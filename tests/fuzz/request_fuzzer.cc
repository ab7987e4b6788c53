// libFuzzer target for the server's request-to-response path: raw bytes through Beast's parser
// (with the server's limits), the router over a live model, and the response serialisation.
// Any crash, sanitizer report or broken response (RequestHarness::Check) aborts. Build and run
// with scripts/fuzz; inputs it found that failed go to tests/fuzz/crashes/, which the test
// suite replays (tests/serving/fuzz_regression_test.cc).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tests/fuzz/request_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Destroyed at exit, which removes its temporary directory.
  static const std::unique_ptr<recloop::test::RequestHarness> harness = [] {
    auto h = recloop::test::RequestHarness::Create();
    if (!h.ok()) {
      std::fprintf(stderr, "request_fuzzer: %s\n", std::string(h.status().message()).c_str());
      std::abort();
    }
    return std::move(h).value();
  }();
  const std::string problem =
      harness->Check(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!problem.empty()) {
    std::fprintf(stderr, "request_fuzzer: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
