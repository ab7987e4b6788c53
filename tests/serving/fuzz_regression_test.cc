// Replays the fuzz target's inputs through the same harness: the seed corpus and every input the
// fuzzer found failing (tests/fuzz/crashes/, kept after the fix). Also tests AnswerRequestBytes,
// the socket-free request path the fuzzer drives.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/fuzz/request_harness.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int CountOccurrences(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1)) {
    ++n;
  }
  return n;
}

class FuzzRegressionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK_AND_ASSIGN(harness_, test::RequestHarness::Create()); }
  std::unique_ptr<test::RequestHarness> harness_;
};

TEST_F(FuzzRegressionTest, EveryCorpusAndCrashInputGetsWellFormedAnswers) {
  int replayed = 0;
  for (const char* sub : {"corpus", "crashes"}) {
    const std::filesystem::path dir = std::filesystem::path(RECLOOP_FUZZ_DIR) / sub;
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (!entry.is_regular_file() || entry.path().filename() == "README.md") continue;
      EXPECT_EQ(harness_->Check(ReadFile(entry.path())), "") << entry.path();
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 30);  // the seeds alone are 30
}

TEST_F(FuzzRegressionTest, PipelinedRequestsAreAnsweredInOrderUntilClose) {
  const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string close = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(harness_->Check(get + get + close + get), "");
  EXPECT_EQ(CountOccurrences(harness_->last_answer(), "HTTP/1.1 200 OK"), 3);
}

TEST_F(FuzzRegressionTest, IncompleteRequestGetsNoAnswer) {
  ASSERT_EQ(harness_->Check("GET /healthz HTTP/1.1\r\nHo"), "");
  EXPECT_EQ(harness_->last_answer(), "");
  ASSERT_EQ(harness_->Check(""), "");
  EXPECT_EQ(harness_->last_answer(), "");
}

TEST_F(FuzzRegressionTest, OversizedAndMalformedRequestsGetTheServersErrors) {
  const std::string big_header =
      "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n";
  ASSERT_EQ(harness_->Check(big_header), "");
  EXPECT_EQ(harness_->last_answer().rfind("HTTP/1.1 431", 0), 0u) << harness_->last_answer();
  EXPECT_NE(harness_->last_answer().find("Connection: close"), std::string::npos);

  const std::string big_body =
      "PUT /v1/items/i1 HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, '{');
  ASSERT_EQ(harness_->Check(big_body), "");
  EXPECT_EQ(harness_->last_answer().rfind("HTTP/1.1 413", 0), 0u) << harness_->last_answer();

  ASSERT_EQ(harness_->Check("GET / HTTP/1.1 extra\r\n\r\n"), "");
  EXPECT_EQ(harness_->last_answer().rfind("HTTP/1.1 400", 0), 0u) << harness_->last_answer();
}

TEST_F(FuzzRegressionTest, AuthorizedPutIsStoredAndReadBack) {
  const std::string body = R"({"categories":["a","b"],"available":false})";
  const std::string put =
      "PUT /v1/items/i5 HTTP/1.1\r\nAuthorization: Bearer " + std::string(test::kFuzzApiKey) +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  ASSERT_EQ(harness_->Check(put + "GET /v1/items/i5 HTTP/1.1\r\n\r\n"), "");
  EXPECT_EQ(CountOccurrences(harness_->last_answer(), "HTTP/1.1 200 OK"), 2)
      << harness_->last_answer();
  EXPECT_NE(harness_->last_answer().find(R"("available":false)"), std::string::npos)
      << harness_->last_answer();
}

TEST_F(FuzzRegressionTest, EachKeyReachesItsScopesRoutesOnly) {
  const auto status_of = [this](const std::string& seed) {
    std::string raw = ReadFile(std::filesystem::path(RECLOOP_FUZZ_DIR) / "corpus" / seed);
    EXPECT_EQ(harness_->Check(raw), "") << seed;
    return harness_->last_answer().substr(0, 12);
  };
  EXPECT_EQ(status_of("post_feedback"), "HTTP/1.1 200");
  EXPECT_EQ(status_of("post_feedback_read_key"), "HTTP/1.1 403");
  EXPECT_EQ(status_of("erase_user_feedback_key"), "HTTP/1.1 403");
  EXPECT_EQ(status_of("erase_user"), "HTTP/1.1 200");
  EXPECT_EQ(status_of("admin_read_key"), "HTTP/1.1 403");
  EXPECT_EQ(status_of("admin_retrain"), "HTTP/1.1 200");
  EXPECT_EQ(status_of("user_feedback"), "HTTP/1.1 200");
  EXPECT_EQ(status_of("cors_preflight"), "HTTP/1.1 204");
  EXPECT_EQ(status_of("cors_preflight_other_origin"), "HTTP/1.1 405");
  EXPECT_EQ(status_of("too_many_exclusions"), "HTTP/1.1 400");
  EXPECT_EQ(status_of("json_too_deep"), "HTTP/1.1 400");
}

}  // namespace
}  // namespace recloop
