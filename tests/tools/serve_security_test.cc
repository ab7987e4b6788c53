// `recloop serve` secure by default (issue 23), the binary run as a user would: it refuses to
// serve a non-loopback address without a key (before binding), --insecure-no-auth overrides that
// loudly, loopback without a key says writes are open to this machine only, --create-api-key-file
// makes a private key that then works and never shows in the log, `keys hash` makes a key-file
// line, SIGHUP rotates the key file over a real socket (a bad file keeps the old keys), an
// empty key file closes the writes and warns, --cors-origin is checked at start and reaches the
// router, and --tls-cert/--tls-key serve HTTPS (both or neither; a bad file is a startup error).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "serving/api_keys.h"
#include "test_util.h"
#include "tests/serving/test_client.h"
#include "tests/serving/tls_test_util.h"
#include "tests/tools/cli_runner.h"

extern char** environ;

namespace recloop {
namespace {

namespace http = boost::beast::http;

class ServeSecurity : public ::testing::Test {
 protected:
  void SetUp() override { std::filesystem::create_directories(dir_.File("models")); }
  void TearDown() override { Stop(); }

  // Starts `recloop serve --models DIR/models --port 0 ARGS` with `env` added to the
  // environment; returns the port of its "listening on" line, or 0 if it exited first.
  int Start(std::vector<std::string> args, const std::string& env = "") {
    log_ = dir_.File("serve.log");
    args.insert(args.begin(),
                {RECLOOP_BINARY, "serve", "--models", dir_.File("models"), "--port", "0"});
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("RECLOOP_API_KEY=", 0) != 0) env_strings.emplace_back(*e);
    }
    if (!env.empty()) env_strings.push_back(env);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int spawned =
        posix_spawn(&pid_, RECLOOP_BINARY, &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) return 0;
    // Readiness: the log's "listening on" line (bounded polling, no fixed sleep).
    for (int i = 0; i < 600; ++i) {
      const std::string text = Log();
      if (const size_t p = text.find("listening on http"); p != std::string::npos) {
        return std::atoi(text.c_str() + text.find(':', p + 21) + 1);  // after the host
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }

  // SIGTERM and the exit code (-1 if not running).
  int Stop() {
    if (pid_ == 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string Log() const { return test::ReadWholeFile(log_); }

  // The status of POST /v1/feedback (one view) with `secret` as the bearer key ("" none).
  static int PostFeedback(int port, const std::string& secret) {
    test::Client c(static_cast<uint16_t>(port));
    return c
        .Send(http::verb::post, "/v1/feedback", R"([{"user":"u1","item":"i1","type":"view"}])",
              "application/json", secret.empty() ? "" : "Bearer " + secret)
        .status;
  }

  test::TempDir dir_;
  pid_t pid_ = 0;
  std::string log_;
};

TEST_F(ServeSecurity, RefusesANonLoopbackAddressWithoutAKeyBeforeBinding) {
  // No models directory either: the refusal comes before anything is opened or bound.
  const test::CliResult r = test::RunRecloop(
      "serve --models " + dir_.File("missing") + " --host 0.0.0.0 --port 0", dir_.File("err.txt"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("refusing to serve 0.0.0.0 without an API key"), std::string::npos) << r.err;
  for (const char* fix : {"--api-key-file", "RECLOOP_API_KEY", "--key-file", "127.0.0.1"}) {
    EXPECT_NE(r.err.find(fix), std::string::npos) << fix << " in " << r.err;
  }
  EXPECT_EQ(r.err.find("listening"), std::string::npos);
}

// scripts/demo's `--host`: refused before the demo trains, with the fix.
TEST_F(ServeSecurity, DemoOnANonLoopbackHostNeedsAKeyAndSaysSoBeforeTraining) {
  const test::CliResult r = test::RunShell("env -u RECLOOP_API_KEY " + std::string(RECLOOP_BINARY) +
                                               " demo --quiet --models " + dir_.File("demo") +
                                               " --serve --host 0.0.0.0 --port 0",
                                           dir_.File("err.txt"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("needs an API key: add --api-key-file"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.File("demo")));
}

TEST_F(ServeSecurity, InsecureNoAuthServesAnyAddressAndWarns) {
  const int port = Start({"--host", "0.0.0.0", "--insecure-no-auth"});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(Log().find("WITHOUT AUTHENTICATION"), std::string::npos) << Log();
  EXPECT_NE(PostFeedback(port, ""), 401);
  EXPECT_EQ(Stop(), 0);
}

TEST_F(ServeSecurity, LoopbackWithoutAKeyStartsAndSaysWritesAreOpenToThisMachineOnly) {
  const int port = Start({"--host", "127.0.0.1"});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(Log().find("open, to this machine only"), std::string::npos) << Log();
  EXPECT_EQ(Stop(), 0);
  // With a key (the environment's), it says nothing of the kind.
  ASSERT_GT(Start({"--host", "127.0.0.1"}, "RECLOOP_API_KEY=k3y"), 0) << Log();
  EXPECT_EQ(Log().find("open, to this machine only"), std::string::npos) << Log();
}

TEST_F(ServeSecurity, CreatedKeyFileIsPrivateWorksAndStaysOutOfTheLog) {
  const std::string key_file = dir_.File("api-key");
  const int port =
      Start({"--host", "0.0.0.0", "--api-key-file", key_file, "--create-api-key-file"});
  ASSERT_GT(port, 0) << Log();
  struct stat st;
  ASSERT_EQ(stat(key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string key = test::ReadWholeFile(key_file);
  ASSERT_EQ(key.size(), 65u);
  key.pop_back();
  EXPECT_NE(Log().find(key_file), std::string::npos) << Log();
  EXPECT_EQ(Log().find(key), std::string::npos);
  EXPECT_EQ(PostFeedback(port, ""), 401);
  EXPECT_EQ(PostFeedback(port, "wrong"), 401);
  EXPECT_NE(PostFeedback(port, key), 401);
  EXPECT_EQ(Stop(), 0);
  // A second start keeps the file.
  ASSERT_GT(Start({"--api-key-file", key_file, "--create-api-key-file"}), 0) << Log();
  EXPECT_EQ(test::ReadWholeFile(key_file), key + "\n");
}

TEST_F(ServeSecurity, KeysHashPrintsAKeyFileLine) {
  const test::CliResult r = test::RunShell("printf %s s3cret | " + std::string(RECLOOP_BINARY) +
                                               " keys hash --name shop --scopes feedback",
                                           dir_.File("err.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "shop feedback " + Sha256Hex("s3cret") + "\n");
  EXPECT_NE(test::RunShell(
                "printf %s s3cret | " + std::string(RECLOOP_BINARY) + " keys hash --scopes writes",
                dir_.File("err.txt"))
                .exit_code,
            0);
}

// --cors-origin (issue 23, browsers): repeatable and handed to the Api, a malformed origin
// refused before anything is opened, "*" and open writes to listed pages warned about.
TEST_F(ServeSecurity, CorsOriginsAreCheckedReportedAndApplied) {
  const test::CliResult bad = test::RunRecloop(
      "serve --models " + dir_.File("missing") + " --port 0 --cors-origin https://shop.example/",
      dir_.File("err.txt"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("'https://shop.example/' is not"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("listening"), std::string::npos);

  const int port =
      Start({"--cors-origin", "https://a.example", "--cors-origin", "https://b.example"});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(Log().find("CORS: pages on https://a.example, https://b.example"), std::string::npos)
      << Log();
  EXPECT_NE(Log().find("those pages may also write"), std::string::npos) << Log();
  const test::Reply preflight =
      test::Client(static_cast<uint16_t>(port))
          .SendRaw(
              "OPTIONS /v1/feedback HTTP/1.1\r\nHost: x\r\nOrigin: https://b.example\r\n"
              "Access-Control-Request-Method: POST\r\n\r\n");
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.Header("Access-Control-Allow-Origin"), "https://b.example");
  EXPECT_EQ(Stop(), 0);

  ASSERT_GT(Start({"--cors-origin", "*"}, "RECLOOP_API_KEY=k3y"), 0) << Log();
  EXPECT_NE(Log().find("a page on ANY site"), std::string::npos) << Log();
  EXPECT_EQ(Log().find("those pages may also write"), std::string::npos) << Log();
  EXPECT_EQ(Stop(), 0);
}

// Rotation without restart: SIGHUP re-reads --key-file; a bad file keeps the keys in use.
TEST_F(ServeSecurity, SighupRotatesTheKeyFileAndABadFileKeepsTheOldKeys) {
  const std::string keys = dir_.File("keys");
  std::ofstream(keys) << "shop feedback " << Sha256Hex("old") << "\n";
  const int port = Start({"--key-file", keys});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(PostFeedback(port, "old"), 401);
  EXPECT_EQ(PostFeedback(port, "new"), 401);

  std::ofstream(keys) << "# rotated\nshop2 feedback " << Sha256Hex("new") << "\n";
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  bool rotated = false;
  for (int i = 0; i < 200 && !rotated; ++i) {
    rotated = PostFeedback(port, "new") != 401;
    if (!rotated) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(rotated) << Log();
  EXPECT_EQ(PostFeedback(port, "old"), 401);

  std::ofstream(keys) << "shop3 feedback not-a-digest\n";
  ASSERT_EQ(kill(pid_, SIGHUP), 0);
  bool logged = false;
  for (int i = 0; i < 200 && !logged; ++i) {
    logged = Log().find("kept the 1 keys in use") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(logged) << Log();
  EXPECT_NE(PostFeedback(port, "new"), 401);
  EXPECT_EQ(Stop(), 0);
}

// An empty key file (or comments only) is closed, not open, and says so at start.
TEST_F(ServeSecurity, AnEmptyKeyFileClosesTheWritesAndWarns) {
  const std::string keys = dir_.File("keys");
  std::ofstream(keys) << "# no keys yet\n";
  const int port = Start({"--host", "0.0.0.0", "--key-file", keys});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(Log().find("holds no key"), std::string::npos) << Log();
  EXPECT_EQ(PostFeedback(port, ""), 401);
  EXPECT_EQ(PostFeedback(port, "anything"), 401);
  EXPECT_EQ(Stop(), 0);
}

// HTTPS without a proxy: the binary with a throwaway self-signed certificate, verified.
TEST_F(ServeSecurity, TlsFlagsServeHttps) {
  const test::TestCert cert = test::WriteSelfSignedCert(dir_.File("server"));
  const int port = Start({"--tls-cert", cert.cert_file, "--tls-key", cert.key_file});
  ASSERT_GT(port, 0) << Log();
  EXPECT_NE(Log().find("listening on https://127.0.0.1:"), std::string::npos) << Log();
  EXPECT_EQ(test::TlsClient(static_cast<uint16_t>(port), cert.cert_file).Get("/healthz").status,
            200);
  EXPECT_EQ(Stop(), 0);
}

TEST_F(ServeSecurity, TlsFlagsComeTogetherAndABadFileIsAStartupError) {
  const std::string models = " --models " + dir_.File("models") + " --port 0";
  const test::CliResult half =
      test::RunRecloop("serve" + models + " --tls-cert " + dir_.File("x.crt"), dir_.File("err"));
  EXPECT_NE(half.exit_code, 0);
  EXPECT_NE(half.err.find("--tls-key"), std::string::npos) << half.err;
  const std::string missing = dir_.File("missing.crt");
  const std::string garbage = dir_.Write("garbage.key", "not a key\n");
  const test::TestCert cert = test::WriteSelfSignedCert(dir_.File("server"));
  // Checked before the model is opened: no models directory either.
  const std::string no_models = " --models " + dir_.File("none") + " --port 0";
  for (const auto& [crt, key, named] : {std::tuple{missing, cert.key_file, missing},
                                        std::tuple{cert.cert_file, garbage, garbage}}) {
    const test::CliResult r = test::RunRecloop(
        "serve" + no_models + " --tls-cert " + crt + " --tls-key " + key, dir_.File("err"));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("listening"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace recloop
