#include "serving/http_server.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/signal_set.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "serving/json_codec.h"

namespace recloop {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

class Session;

// The steps of answering one request that do not touch a socket, shared by Session and
// AnswerRequestBytes so that the fuzz target runs exactly the server's code.

// The response to a request the parser refused (oversized or malformed).
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

// True for errors that mean the peer or a timer ended the read, not that the request was bad:
// these close the connection without a response.
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
  for (const auto& field : msg) req.headers.emplace_back(str(field.name_string()), str(field.value()));
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
  msg->set(http::field::content_type, res.content_type);
  for (const auto& [name, value] : res.headers) msg->set(name, value);
  msg->body() = std::move(res.body);
  msg->keep_alive(keep_alive);
  msg->prepare_payload();
  return msg;
}

}  // namespace

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler handler;
  HttpObserver observer;
  net::io_context ioc;
  // Server-wide operations (accept, drain timer, signals) run on this strand.
  net::strand<net::io_context::executor_type> strand{net::make_strand(ioc)};
  tcp::acceptor acceptor{strand};
  net::steady_timer retry_timer{strand};
  net::steady_timer drain_timer{strand};
  std::optional<net::signal_set> signals;
  std::function<void()> on_hangup;  // SIGHUP's callback, if any
  std::atomic<int64_t> connections{0};
  std::atomic<bool> stopping{false};
  uint16_t port = 0;

  std::mutex mu;
  std::vector<std::weak_ptr<Session>> sessions;  // guarded by mu; expired entries pruned

  void Log(const std::string& message) const {
    std::fprintf(stderr, "recloop serve: %s\n", message.c_str());
  }
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  void SessionClosed();
};

namespace {

// One connection: waits for a request (idle timeout), reads it (read timeout, size limits),
// calls the handler, writes the response, and loops while the connection is kept alive. All of
// its handlers run on its own strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl* server)
      : stream_(std::move(socket)),
        server_(server),
        tokens_(server->options.max_requests_per_second_per_connection),
        refilled_(Clock::now()) {
    beast::error_code ec;
    const tcp::endpoint peer = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_address_ = peer.address().to_string();
  }

  ~Session() { server_->SessionClosed(); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::WaitForRequest, shared_from_this()));
  }

  // On server stop: an idle connection closes now; a busy one after its response.
  void StopIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) {
        beast::error_code ec;
        self->stream_.socket().cancel(ec);
      }
    });
  }

  void ForceClose() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.socket().close(ec);
    });
  }

 private:
  const HttpServerOptions& options() const { return server_->options; }

  void WaitForRequest() {
    if (server_->stopping) return Close();
    if (buffer_.size() > 0) return ReadRequest();  // a pipelined request is already here
    idle_ = true;
    stream_.expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&Session::OnFirstBytes, shared_from_this()));
  }

  void OnFirstBytes(beast::error_code ec, std::size_t n) {
    idle_ = false;
    if (ec) return Close();  // idle timeout, client gone, or server stopping
    buffer_.commit(n);
    ReadRequest();
  }

  void ReadRequest() {
    parser_.emplace();
    ConfigureParser(*parser_, options());
    // The whole request within the read timeout, however slowly its bytes trickle in.
    stream_.expires_after(options().read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) {
    if (ec) {
      if (IsTransportError(ec)) return Close();
      HttpRequest req;  // what could be parsed is unreliable: observe it as an empty request
      return Write(ParseErrorResponse(ec, options()), /*keep_alive=*/false, req, Clock::now());
    }
    const auto start = Clock::now();
    auto& msg = parser_->get();
    const bool keep_alive = msg.keep_alive();
    HttpRequest req = ToHttpRequest(msg);
    req.remote_address = remote_address_;
    HttpResponse res;
    if (!TakeToken()) {
      res = JsonError(429, "rate_limited", "too many requests on this connection");
      res.rate_limited_by = "connection";
      // Whole seconds until the bucket holds a token again.
      const double rate = options().max_requests_per_second_per_connection;
      res.headers.emplace_back(
          "Retry-After",
          std::to_string(std::max(1, static_cast<int>(std::ceil((1 - tokens_) / rate)))));
    } else {
      res = server_->handler(req);
    }
    Write(std::move(res), keep_alive, req, start);
  }

  bool TakeToken() {
    const double rate = options().max_requests_per_second_per_connection;
    if (rate <= 0) return true;
    const auto now = Clock::now();
    tokens_ = std::min(rate, tokens_ + rate * std::chrono::duration<double>(now - refilled_).count());
    refilled_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

  void Write(HttpResponse res, bool keep_alive, const HttpRequest& req, Clock::time_point start) {
    keep_alive = keep_alive && !res.close && !server_->stopping;
    auto msg = ToBeastResponse(res, keep_alive);
    if (server_->observer) {
      res.body.clear();
      server_->observer(req, res,
                        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    response_ = msg;
    stream_.expires_after(options().write_timeout);
    http::async_write(stream_, *msg,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
    response_.reset();
    if (ec || !keep_alive) return Close();
    WaitForRequest();
  }

  // Lingering close: stop sending, then read and discard what the client still sends until it
  // closes (or a second passes). Closing a socket with unread bytes makes the kernel reset the
  // connection, which can destroy our last response (a 413, say) before the client reads it.
  // The socket closes when the last handler holding this session returns.
  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    stream_.expires_after(std::chrono::seconds(1));
    Discard();
  }

  void Discard() {
    stream_.async_read_some(net::buffer(discard_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (!ec) self->Discard();
                            });
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<void> response_;  // kept alive until written
  bool idle_ = false;
  std::array<char, 4096> discard_;
  double tokens_;
  Clock::time_point refilled_;
  std::string remote_address_;  // the peer's IP address, empty if unknown
};

}  // namespace

void HttpServer::Impl::DoAccept() {
  acceptor.async_accept(net::make_strand(ioc),
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
    // Answered here, synchronously: a few bytes that fit the socket buffer.
    const HttpResponse busy =
        JsonError(503, "too_many_connections", "the server is at its connection limit");
    const std::string raw = absl::StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nServer: recloop\r\n"
        "X-Content-Type-Options: nosniff\r\nContent-Type: ",
        busy.content_type, "\r\nConnection: close\r\nContent-Length: ", busy.body.size(),
        "\r\n\r\n", busy.body);
    beast::error_code ignored;
    net::write(socket, net::buffer(raw), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
  } else {
    ++connections;
    auto session = std::make_shared<Session>(std::move(socket), this);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (sessions.size() >= 64 && sessions.size() >= 2 * static_cast<size_t>(connections)) {
        std::erase_if(sessions, [](const auto& w) { return w.expired(); });
      }
      sessions.push_back(session);
    }
    session->Start();
  }
  DoAccept();
}

void HttpServer::Impl::SessionClosed() {
  if (--connections == 0 && stopping) {
    net::post(strand, [this] { drain_timer.cancel(); });
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() = default;

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(HttpServerOptions options,
                                                                HttpHandler handler,
                                                                HttpObserver observer) {
  if (handler == nullptr) return absl::InvalidArgumentError("HttpServer needs a handler");
  if (options.threads < 0) return absl::InvalidArgumentError("threads must be >= 0");
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
  if (options.threads == 0) {
    options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto impl = std::make_unique<Impl>();
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
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s.options.host, ":",
                                               s.options.port, ": ", ec.message()));
  }
  s.port = s.acceptor.local_endpoint().port();
  net::post(s.strand, [&s] { s.DoAccept(); });
  return absl::OkStatus();
}

uint16_t HttpServer::port() const { return impl_->port; }

int64_t HttpServer::open_connections() const { return impl_->connections.load(); }

void HttpServer::Run() {
  Impl& s = *impl_;
  std::vector<std::thread> threads;
  for (int i = 1; i < s.options.threads; ++i) threads.emplace_back([&s] { s.ioc.run(); });
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
    if (s.signals) s.signals->cancel(ec);
    std::vector<std::shared_ptr<Session>> live;
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
    s.drain_timer.async_wait([&s, weak = std::vector<std::weak_ptr<Session>>(live.begin(),
                                                                              live.end())](
                                 beast::error_code e) {
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
        ec = {};
        if (used == 0) break;  // the rest is an incomplete request
        continue;
      }
      if (ec) break;
    }
    if (!ec && !parser.got_some()) break;  // the client closed between requests
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
