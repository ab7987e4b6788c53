#include "serving/http_server.h"

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "serving/http_session.h"
#include "serving/http_tls.h"
#include "serving/json_codec.h"

namespace recloop {

namespace beast = http_internal::beast;
namespace http = http_internal::http;
namespace net = http_internal::net;
using tcp = net::ip::tcp;

namespace http_internal {

HttpResponse ParseErrorResponse(beast::error_code ec, const HttpServerOptions& options) {
  if (ec == http::error::header_limit) {
    return JsonError(431, "header_too_large",
                     absl::StrCat("request header exceeds ", options.max_header_bytes, " bytes"));
  }
  if (ec == http::error::body_limit) {
    return JsonError(413, "body_too_large",
                     absl::StrCat("request body exceeds ", options.max_body_bytes, " bytes"));
  }
  return JsonError(400, "bad_request", absl::StrCat("malformed HTTP request: ", ec.message()));
}

bool IsTransportError(beast::error_code ec) {
  return ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
         ec == http::error::end_of_stream || ec == http::error::partial_message;
}

void ConfigureParser(http::request_parser<http::string_body>& parser,
                     const HttpServerOptions& options) {
  parser.header_limit(options.max_header_bytes);
  parser.body_limit(options.max_body_bytes);
}

HttpRequest ToHttpRequest(http::request<http::string_body>& msg) {
  HttpRequest req;
  auto str = [](beast::string_view v) { return std::string(v.data(), v.size()); };
  req.method = str(msg.method_string());
  req.target = str(msg.target());
  for (const auto& field : msg)
    req.headers.emplace_back(str(field.name_string()), str(field.value()));
  req.has_length = msg.has_content_length() || msg.chunked();
  req.body = std::move(msg.body());
  return req;
}

std::shared_ptr<http::response<http::string_body>> ToBeastResponse(HttpResponse& res,
                                                                   bool keep_alive) {
  auto msg = std::make_shared<http::response<http::string_body>>(
      static_cast<http::status>(res.status), 11);
  msg->set(http::field::server, "recloop");
  // Also on the answers the server makes itself (400/413/431, 429), not only the Api's.
  msg->set("X-Content-Type-Options", "nosniff");
  // None on an answer without a body (a 204 preflight).
  if (!res.content_type.empty()) msg->set(http::field::content_type, res.content_type);
  for (const auto& [name, value] : res.headers) msg->set(name, value);
  msg->body() = std::move(res.body);
  msg->keep_alive(keep_alive);
  msg->prepare_payload();
  return msg;
}

}  // namespace http_internal

// The listener and the server's lifecycle; the sessions are http_internal::Session<Stream>.
struct HttpServer::Impl : http_internal::SessionHost {
  // One io_context per I/O thread, each run by that thread alone (issue 21): a connection lives
  // on one thread, so threads share neither a scheduler's lock nor its wake-ups. `ioc`, run by
  // the caller of Run, holds only the listener, its timers and the signals, so that a slow
  // request never delays accepting or stopping; `workers` (options.threads of them) hold the
  // connections, round-robin, and are kept running by `guards` until Stop().
  net::io_context ioc{1};
  std::vector<std::unique_ptr<net::io_context>> workers;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;  // on strand
  size_t accepted = 0;  // on strand: connections handed out round-robin
  // HTTPS when set (options.tls_cert_file), else plain HTTP.
  std::unique_ptr<net::ssl::context> tls;
  // Server-wide operations (accept, drain timer, signals) run on this strand.
  net::strand<net::io_context::executor_type> strand{net::make_strand(ioc)};
  tcp::acceptor acceptor{strand};
  net::steady_timer retry_timer{strand};
  net::steady_timer drain_timer{strand};
  std::optional<net::signal_set> signals;
  std::function<void()> on_hangup;  // SIGHUP's callback, if any
  uint16_t port = 0;

  std::mutex mu;
  // Guarded by mu; expired entries pruned.
  std::vector<std::weak_ptr<http_internal::SessionControl>> sessions;

  void Log(const std::string& message) const {
    std::fprintf(stderr, "recloop serve: %s\n", message.c_str());
  }
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void RefuseOverLimit(tcp::socket& socket);
  // Starts a session of `Stream` on `socket` and registers it for Stop().
  template <class Stream, class... StreamArgs>
  void StartSession(tcp::socket&& socket, StreamArgs&... stream_args);
  void SessionClosed() override;

  // The workers go first, while every other member is alive: a handler still queued on one
  // (a session that was never run to its end, e.g. posted to after its thread returned) is
  // destroyed with it, and the session's destructor reports to this listener's strand.
  ~Impl() override {
    blocking_pool.reset();  // joined: a request still in it posts its answer to its worker
    guards.clear();
    workers.clear();
  }
};

void HttpServer::Impl::DoAccept() {
  net::io_context& context = *workers[accepted++ % workers.size()];
  acceptor.async_accept(net::make_strand(context),
                        beast::bind_front_handler(&HttpServer::Impl::OnAccept, this));
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping) return;
  if (ec) {
    // E.g. out of file descriptors: retrying at once would spin; retry shortly instead of
    // giving up on accepting for good.
    Log(absl::StrCat("accept failed: ", ec.message()));
    retry_timer.expires_after(std::chrono::milliseconds(100));
    retry_timer.async_wait([this](beast::error_code e) {
      if (!e && !stopping) DoAccept();
    });
    return;
  }
  if (connections.load() >= options.max_connections) {
    RefuseOverLimit(socket);
  } else if (tls != nullptr) {
    StartSession<http_internal::TlsStream>(std::move(socket), *tls);
  } else {
    StartSession<http_internal::PlainStream>(std::move(socket));
  }
  DoAccept();
}

// Plain HTTP: a 503, written here synchronously (a few bytes that fit the socket buffer). Over
// TLS: closed without an answer, which would need a handshake first.
void HttpServer::Impl::RefuseOverLimit(tcp::socket& socket) {
  beast::error_code ignored;
  if (tls == nullptr) {
    const HttpResponse busy =
        JsonError(503, "too_many_connections", "the server is at its connection limit");
    const std::string raw = absl::StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nServer: recloop\r\n"
        "X-Content-Type-Options: nosniff\r\nContent-Type: ",
        busy.content_type, "\r\nConnection: close\r\nContent-Length: ", busy.body.size(),
        "\r\n\r\n", busy.body);
    net::write(socket, net::buffer(raw), ignored);
  }
  socket.shutdown(tcp::socket::shutdown_both, ignored);
}

template <class Stream, class... StreamArgs>
void HttpServer::Impl::StartSession(tcp::socket&& socket, StreamArgs&... stream_args) {
  ++connections;
  auto session =
      std::make_shared<http_internal::Session<Stream>>(this, std::move(socket), stream_args...);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (sessions.size() >= 64 && sessions.size() >= 2 * static_cast<size_t>(connections)) {
      std::erase_if(sessions, [](const auto& w) { return w.expired(); });
    }
    sessions.push_back(session);
  }
  session->Start();
}

void HttpServer::Impl::SessionClosed() {
  if (--connections == 0 && stopping) {
    net::post(strand, [this] { drain_timer.cancel(); });
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

namespace {

// The checks of HttpServer::CheckOptions, without loading the TLS files.
absl::Status ValidateOptions(const HttpServerOptions& options) {
  if (options.threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
  if (options.blocking_threads < 0) {
    return absl::InvalidArgumentError("blocking_threads must be >= 0");
  }
  if (options.max_header_bytes < 256) {
    return absl::InvalidArgumentError("max_header_bytes must be >= 256");
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("max_connections must be >= 1");
  }
  if (options.idle_timeout.count() <= 0 || options.read_timeout.count() <= 0 ||
      options.write_timeout.count() <= 0 || options.drain_timeout.count() < 0) {
    return absl::InvalidArgumentError("timeouts must be > 0");
  }
  if (!(options.max_requests_per_second_per_connection >= 0)) {
    return absl::InvalidArgumentError("max_requests_per_second_per_connection must be >= 0");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(options.tls_cert_file.empty()
                                          ? "tls_key_file needs tls_cert_file"
                                          : "tls_cert_file needs tls_key_file");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status HttpServer::CheckOptions(const HttpServerOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  if (options.tls_cert_file.empty()) return absl::OkStatus();
  return MakeTlsServerContext(options.tls_cert_file, options.tls_key_file).status();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options,
                                                               HttpHandler handler,
                                                               HttpObserver observer) {
  if (handler == nullptr) return absl::InvalidArgumentError("HttpServer needs a handler");
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  if (options.threads == 0) {
    options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto impl = std::make_unique<Impl>();
  if (!options.tls_cert_file.empty()) {
    auto tls = MakeTlsServerContext(options.tls_cert_file, options.tls_key_file);
    if (!tls.ok()) return tls.status();
    impl->tls = *std::move(tls);
  }
  for (int i = 0; i < options.threads; ++i) {
    impl->workers.push_back(std::make_unique<net::io_context>(1));
    impl->guards.push_back(net::make_work_guard(*impl->workers.back()));
  }
  if (options.blocking_threads > 0) {
    impl->blocking_pool = std::make_unique<net::thread_pool>(options.blocking_threads);
  }
  impl->options = std::move(options);
  impl->handler = std::move(handler);
  impl->observer = std::move(observer);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

absl::Status HttpServer::Start() {
  Impl& s = *impl_;
  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on '", s.options.host, "': not an IP address"));
  }
  const tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", s.options.host, ":", s.options.port, ": ", ec.message()));
  }
  s.port = s.acceptor.local_endpoint().port();
  net::post(s.strand, [&s] { s.DoAccept(); });
  return absl::OkStatus();
}

uint16_t HttpServer::port() const { return impl_->port; }

bool HttpServer::tls() const { return impl_->tls != nullptr; }

int64_t HttpServer::open_connections() const { return impl_->connections.load(); }

void HttpServer::Run() {
  Impl& s = *impl_;
  std::vector<std::thread> threads;
  for (auto& worker : s.workers) threads.emplace_back([&worker] { worker->run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  net::post(s.strand, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    s.retry_timer.cancel();
    // The other threads run on while their connections have work, then return.
    s.guards.clear();
    if (s.signals) s.signals->cancel(ec);
    std::vector<std::shared_ptr<http_internal::SessionControl>> live;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      for (const auto& w : s.sessions) {
        if (auto p = w.lock()) live.push_back(std::move(p));
      }
      s.sessions.clear();
    }
    for (const auto& session : live) session->StopIfIdle();
    if (s.connections.load() == 0) return;
    // Requests in flight get drain_timeout to finish; then every connection is closed.
    s.drain_timer.expires_after(s.options.drain_timeout);
    using Weak = std::weak_ptr<http_internal::SessionControl>;
    s.drain_timer.async_wait(
        [&s, weak = std::vector<Weak>(live.begin(), live.end())](beast::error_code e) {
          if (e) return;  // cancelled: every connection closed in time
          s.Log("drain timeout: closing the remaining connections");
          for (const auto& w : weak) {
            if (auto p = w.lock()) p->ForceClose();
          }
        });
  });
}

void HttpServer::StopOnSignals(std::function<void()> on_hangup) {
  Impl& s = *impl_;
  s.on_hangup = std::move(on_hangup);
  s.signals.emplace(s.strand, SIGINT, SIGTERM);
  if (s.on_hangup) s.signals->add(SIGHUP);
  AwaitSignal();
}

void HttpServer::AwaitSignal() {
  impl_->signals->async_wait([this](beast::error_code ec, int signal) {
    if (ec) return;
    if (signal != SIGHUP) return Stop();
    impl_->on_hangup();
    AwaitSignal();
  });
}

std::string AnswerRequestBytes(std::string_view raw, const HttpServerOptions& options,
                               const HttpHandler& handler) {
  using http_internal::ConfigureParser;
  using http_internal::IsTransportError;
  using http_internal::ParseErrorResponse;
  using http_internal::ToBeastResponse;
  using http_internal::ToHttpRequest;
  std::ostringstream out;
  std::string_view rest = raw;
  bool first = true;
  while (first || !rest.empty()) {
    first = false;
    http::request_parser<http::string_body> parser;
    ConfigureParser(parser, options);
    parser.eager(true);
    beast::error_code ec;
    while (!rest.empty() && !parser.is_done()) {
      const std::size_t used = parser.put(net::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(used);
      if (ec == http::error::need_more) {
        // As Beast's own read loop: after need_more the parser is only called again with more
        // bytes (calling it again with the same ones trips its assertions, e.g. in a chunk
        // header; found by the fuzzer). All bytes are here already, so the rest is incomplete.
        ec = {};
        break;
      }
      if (ec) break;
    }
    if (!ec && !parser.got_some()) break;              // the client closed between requests
    if (!ec && !parser.is_done()) parser.put_eof(ec);  // the client closed mid-request
    if (ec) {
      if (IsTransportError(ec)) break;  // the server closes without answering
      HttpResponse res = ParseErrorResponse(ec, options);
      out << *ToBeastResponse(res, /*keep_alive=*/false);
      break;
    }
    auto& msg = parser.get();
    bool keep_alive = msg.keep_alive();
    HttpResponse res = handler(ToHttpRequest(msg));
    keep_alive = keep_alive && !res.close;
    out << *ToBeastResponse(res, keep_alive);
    if (!keep_alive) break;
  }
  return std::move(out).str();
}

}  // namespace recloop
