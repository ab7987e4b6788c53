// The HTTP server over TLS (HttpServerOptions::tls_cert_file): a real server on 127.0.0.1 with a
// throwaway self-signed certificate, spoken to over sockets by a client that verifies it. The
// server keeps its plain-HTTP behaviour (timeouts, rate limit, drain, connection cap), and a
// client that speaks plain HTTP, or nothing at all, to the TLS port is cut off without harm.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "boost/asio/write.hpp"
#include "gtest/gtest.h"
#include "serving/http_server.h"
#include "tests/serving/test_client.h"
#include "tests/serving/tls_test_util.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;
using test::TlsClient;

// A server with a small handler (/healthz; /test/slow takes 300 ms; /test/peer answers the
// request's remote_address) on its own thread.
class TlsServerTest : public ::testing::Test {
 protected:
  void SetUp() override { cert_ = test::WriteSelfSignedCert(dir_.File("server")); }

  void Start(HttpServerOptions http = {}) {
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 2;
    http.tls_cert_file = cert_.cert_file;
    http.tls_key_file = cert_.key_file;
    ASSERT_OK_AND_ASSIGN(server_, HttpServer::Create(http, [this](const HttpRequest& r) {
                           HttpResponse res;
                           if (r.target == "/test/slow") {
                             slow_entered_ = true;
                             std::this_thread::sleep_for(std::chrono::milliseconds(300));
                             res.body = "{\"slow\":true}";
                           } else if (r.target == "/test/peer") {
                             res.body = r.remote_address;
                           } else if (r.target == "/healthz") {
                             res.body = "{\"status\":\"ok\"}";
                           } else {
                             res.status = 404;
                           }
                           return res;
                         }));
    ASSERT_TRUE(server_->tls());
    // Listening once Start returns: clients that connect before Run wait in the backlog.
    ASSERT_OK(server_->Start());
    thread_ = std::thread([this] { server_->Run(); });
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      if (thread_.joinable()) thread_.join();
    }
  }

  // True once no connection is open, polled for at most `timeout`.
  bool AllClosedWithin(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (server_->open_connections() > 0) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }

  uint16_t port() const { return server_->port(); }

  test::TempDir dir_;
  test::TestCert cert_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::atomic<bool> slow_entered_{false};
};

TEST_F(TlsServerTest, HealthzOverTlsAnswers200AndKeepsTheConnection) {
  Start();
  TlsClient c(port(), cert_.cert_file);
  for (int i = 0; i < 3; ++i) {
    const test::Reply r = c.Get("/healthz");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "{\"status\":\"ok\"}");
    EXPECT_TRUE(r.keep_alive);
  }
  EXPECT_EQ(server_->open_connections(), 1);  // the three requests shared one connection
}

TEST_F(TlsServerTest, RequestsCarryThePeerAddress) {
  Start();
  EXPECT_EQ(TlsClient(port(), cert_.cert_file).Get("/test/peer").body, "127.0.0.1");
}

TEST_F(TlsServerTest, TlsCloseAfterConnectionCloseIsOrderly) {
  Start();
  TlsClient c(port(), cert_.cert_file);
  const test::Reply r = c.Get("/healthz", /*keep_alive=*/false);
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.keep_alive);
  // The server's close_notify arrives; answering it completes the TLS shutdown.
  beast::error_code ec;
  c.stream().shutdown(ec);
  EXPECT_TRUE(!ec || ec == net::ssl::error::stream_truncated) << ec.message();
  c.tcp_layer().close();
  // At once, not after the close timeout (1 s) that bounds an unanswered close_notify.
  EXPECT_TRUE(AllClosedWithin(std::chrono::milliseconds(800)));
}

TEST_F(TlsServerTest, ClientThatNeverAnswersCloseNotifyIsClosedWithinTheCloseTimeout) {
  Start();
  TlsClient c(port(), cert_.cert_file);
  ASSERT_EQ(c.Get("/healthz", /*keep_alive=*/false).status, 200);
  // The client neither reads the server's close_notify nor closes: the server gives up after
  // its close timeout (1 s), not never.
  const auto start = Clock::now();
  EXPECT_TRUE(AllClosedWithin(std::chrono::seconds(4)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
}

TEST_F(TlsServerTest, PlainHttpToTheTlsPortGetsNoHttpAnswerAndIsClosed) {
  HttpServerOptions http;
  http.read_timeout = std::chrono::milliseconds(500);
  Start(http);
  test::Client plain(port());
  beast::error_code ec;
  net::write(plain.stream().socket(),
             net::buffer(std::string("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")), ec);
  ASSERT_FALSE(ec) << ec.message();
  // Whatever comes back (a TLS alert at most) is no HTTP response, and the server closes.
  std::string got;
  char chunk[512];
  plain.stream().expires_after(std::chrono::seconds(3));
  for (;;) {
    const size_t n = plain.stream().read_some(net::buffer(chunk), ec);
    got.append(chunk, n);
    if (ec) break;
  }
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  EXPECT_FALSE(absl::StartsWith(got, "HTTP/")) << got;
  // The server is unharmed.
  EXPECT_EQ(TlsClient(port(), cert_.cert_file).Get("/healthz").status, 200);
  EXPECT_TRUE(AllClosedWithin(std::chrono::seconds(3)));
}

TEST_F(TlsServerTest, ClientThatNeverHandshakesIsCutOffByTheReadTimeout) {
  HttpServerOptions http;
  http.read_timeout = std::chrono::milliseconds(300);  // far below the 30 s idle timeout
  Start(http);
  test::Client silent(port());  // connects, then says nothing
  const auto start = Clock::now();
  EXPECT_TRUE(silent.ClosedWithin(std::chrono::seconds(5)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  // Meanwhile and after, TLS clients are served.
  EXPECT_EQ(TlsClient(port(), cert_.cert_file).Get("/healthz").status, 200);
}

TEST_F(TlsServerTest, RateLimitPerConnectionAnswers429OverTls) {
  HttpServerOptions http;
  http.max_requests_per_second_per_connection = 5;
  Start(http);
  TlsClient c(port(), cert_.cert_file);
  int limited = 0;
  for (int i = 0; i < 20; ++i) limited += c.Get("/healthz").status == 429 ? 1 : 0;
  EXPECT_GE(limited, 10);  // a burst of 5 passes, then about 5 per second
}

TEST_F(TlsServerTest, ConnectionPastTheLimitIsClosedWithoutAHandshake) {
  HttpServerOptions http;
  http.max_connections = 1;
  Start(http);
  TlsClient first(port(), cert_.cert_file);
  ASSERT_EQ(first.Get("/healthz").status, 200);
  EXPECT_THROW(TlsClient(port(), cert_.cert_file), boost::system::system_error);
  EXPECT_EQ(first.Get("/healthz").status, 200);  // the open connection is unaffected
}

TEST_F(TlsServerTest, StopFinishesTheRequestInFlightAndClosesIdleConnections) {
  Start();
  TlsClient idle(port(), cert_.cert_file);
  ASSERT_EQ(idle.Get("/healthz").status, 200);
  test::Client handshaking(port());  // connected, no TLS handshake yet: closed at once too
  test::Reply slow_reply;
  std::thread slow([&] { slow_reply = TlsClient(port(), cert_.cert_file).Get("/test/slow"); });
  for (int i = 0; i < 200 && !slow_entered_; ++i) {  // bounded wait for the handler to start
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(slow_entered_);
  const auto stop = Clock::now();
  server_->Stop();
  slow.join();
  EXPECT_EQ(slow_reply.status, 200);  // answered in full, not dropped
  EXPECT_EQ(slow_reply.body, "{\"slow\":true}");
  EXPECT_FALSE(slow_reply.keep_alive);  // Connection: close while draining
  EXPECT_TRUE(handshaking.ClosedWithin(std::chrono::seconds(5)));
  thread_.join();  // Run() returned: the server drained and stopped
  // The idle connection's close_notify is unanswered (that client is not reading): bounded.
  EXPECT_LT(Clock::now() - stop, std::chrono::seconds(4));
}

// Startup errors: the options are checked and the files loaded in Create, before binding.
class TlsOptionsTest : public ::testing::Test {
 protected:
  absl::Status Create(const std::string& cert, const std::string& key) {
    HttpServerOptions http;
    http.port = 0;
    http.tls_cert_file = cert;
    http.tls_key_file = key;
    return HttpServer::Create(http, [](const HttpRequest&) { return HttpResponse{}; }).status();
  }
  test::TempDir dir_;
};

TEST_F(TlsOptionsTest, CertificateAndKeyComeTogether) {
  const test::TestCert cert = test::WriteSelfSignedCert(dir_.File("server"));
  const absl::Status no_key = Create(cert.cert_file, "");
  EXPECT_EQ(no_key.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(no_key.message(), "tls_key_file")) << no_key;
  const absl::Status no_cert = Create("", cert.key_file);
  EXPECT_EQ(no_cert.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(no_cert.message(), "tls_cert_file")) << no_cert;
}

TEST_F(TlsOptionsTest, MissingOrInvalidFilesAreStartupErrorsNamingTheFile) {
  const test::TestCert cert = test::WriteSelfSignedCert(dir_.File("server"));
  const test::TestCert other = test::WriteSelfSignedCert(dir_.File("other"));
  const std::string missing = dir_.File("missing.crt");
  const std::string garbage = dir_.Write("garbage.pem", "not a certificate\n");
  struct Case {
    std::string cert, key, named, says;
  };
  for (const Case& c : {Case{missing, cert.key_file, missing, "cannot read"},
                        Case{cert.cert_file, missing, missing, "cannot read"},
                        Case{garbage, cert.key_file, garbage, "not a PEM certificate"},
                        Case{cert.cert_file, garbage, garbage, "private key"},
                        Case{cert.key_file, cert.key_file, cert.key_file, "certificate"},
                        Case{cert.cert_file, other.key_file, other.key_file, "does not match"}}) {
    const absl::Status s = Create(c.cert, c.key);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), c.named)) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), c.says)) << s;
  }
}

}  // namespace
}  // namespace recloop
