// Private to the HTTP server (included by http_server.cc only; it brings in Boost.Beast): one
// connection's session, generic over its stream: a plain beast::tcp_stream, or a
// beast::ssl_stream over one for HTTPS. Both keep the same limits: the TLS handshake runs under
// the read timeout, and closing a TLS connection (close_notify) is bounded by kCloseTimeout.
#ifndef RECLOOP_SERVING_HTTP_SESSION_H_
#define RECLOOP_SERVING_HTTP_SESSION_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "base/thread_priority.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/thread_pool.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "serving/http.h"
#include "serving/http_server.h"
#include "serving/json_codec.h"

namespace recloop::http_internal {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// How long a closing connection may take: the lingering read of what the client still sends,
// and, over TLS, the exchange of close_notify alerts before it.
inline constexpr std::chrono::seconds kCloseTimeout{1};

// The steps of answering one request that do not touch a socket (http_server.cc), shared by
// Session and AnswerRequestBytes so that the fuzz target runs exactly the server's code.

// The response to a request the parser refused (oversized or malformed).
HttpResponse ParseErrorResponse(beast::error_code ec, const HttpServerOptions& options);
// True for errors that mean the peer or a timer ended the read, not that the request was bad:
// these close the connection without a response.
bool IsTransportError(beast::error_code ec);
void ConfigureParser(http::request_parser<http::string_body>& parser,
                     const HttpServerOptions& options);
HttpRequest ToHttpRequest(http::request<http::string_body>& msg);
std::shared_ptr<http::response<http::string_body>> ToBeastResponse(HttpResponse& res,
                                                                   bool keep_alive);

// What sessions share with their server (HttpServer::Impl derives from it). Thread-safe.
struct SessionHost {
  virtual ~SessionHost() = default;
  // Called by every session's destructor, on its strand.
  virtual void SessionClosed() = 0;

  HttpServerOptions options;
  HttpHandler handler;
  HttpObserver observer;  // may be null
  // Runs the requests that may wait (MayWait), when options.blocking_threads > 0; else null.
  std::unique_ptr<net::thread_pool> blocking_pool;
  std::atomic<int64_t> connections{0};
  std::atomic<bool> stopping{false};
};

// Requests whose handler may wait on something other than the CPU: every method but GET, HEAD
// and OPTIONS (a write is acknowledged only once its transaction commits to disk).
inline bool MayWait(const HttpRequest& req) {
  return req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS";
}

// What the server's Stop() does to a session, whatever its stream. Thread-safe.
class SessionControl {
 public:
  virtual ~SessionControl() = default;
  // On server stop: an idle connection (or one still in its TLS handshake) closes now; a busy
  // one after its response.
  virtual void StopIfIdle() = 0;
  // After the drain timeout: closes the socket whatever the session is doing.
  virtual void ForceClose() = 0;
};

// One connection: (TLS handshake,) waits for a request (idle timeout), reads it (read timeout,
// size limits), calls the handler, writes the response, and loops while the connection is kept
// alive. All of its handlers run on its own strand (the socket's executor).
template <class Stream>
class Session : public SessionControl, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  // `stream_args` follow the socket into Stream's constructor (the ssl::context for TLS).
  template <class... StreamArgs>
  Session(SessionHost* server, tcp::socket&& socket, StreamArgs&... stream_args)
      : stream_(std::move(socket), stream_args...),
        server_(server),
        tokens_(server->options.max_requests_per_second_per_connection),
        refilled_(Clock::now()) {
    beast::error_code ec;
    const tcp::endpoint peer = this->socket().remote_endpoint(ec);
    if (!ec) remote_address_ = peer.address().to_string();
  }

  ~Session() override { server_->SessionClosed(); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->WaitForRequest();
      }
    });
  }

  void StopIfIdle() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->idle_) {
        beast::error_code ec;
        self->socket().cancel(ec);
      }
    });
  }

  void ForceClose() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ec;
      self->socket().shutdown(tcp::socket::shutdown_both, ec);
      self->socket().close(ec);
    });
  }

 private:
  const HttpServerOptions& options() const { return server_->options; }
  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }
  tcp::socket& socket() { return tcp_layer().socket(); }

  // TLS only: the handshake, as much a part of the first request as its header, gets the read
  // timeout (a client that connects and never says hello is cut off like a slow loris).
  void Handshake() {
    idle_ = true;  // no request in flight: a stop closes it at once
    tcp_layer().expires_after(options().read_timeout);
    stream_.async_handshake(net::ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              self->idle_ = false;
                              if (ec) return self->LingeringClose();  // e.g. plain HTTP
                              self->handshake_done_ = true;
                              self->WaitForRequest();
                            });
  }

  void WaitForRequest() {
    if (server_->stopping) return Close();
    if (buffer_.size() > 0) return ReadRequest();  // a pipelined request is already here
    idle_ = true;
    tcp_layer().expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->OnFirstBytes(ec, n);
                            });
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
    tcp_layer().expires_after(options().read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (IsTransportError(ec)) return Close();
      HttpRequest req;  // what could be parsed is unreliable: observe it as an empty request
      return Write(ParseErrorResponse(ec, options()), /*keep_alive=*/false, req, Clock::now());
    }
    const auto start = Clock::now();
    auto& msg = parser_->get();
    const bool keep_alive = msg.keep_alive();
    // The one place where a request's fields are filled in (from the message and the socket).
    HttpRequest req = ToHttpRequest(msg);
    req.remote_address = remote_address_;
    HttpResponse res;
    if (!TakeToken()) {
      res = JsonError(429, "rate_limited", "too many requests on this connection");
      res.rate_limited_by = "connection";
      // Whole seconds until the bucket holds a token again.
      const double rate = server_->options.max_requests_per_second_per_connection;
      res.headers.emplace_back(
          "Retry-After",
          std::to_string(std::max(1, static_cast<int>(std::ceil((1 - tokens_) / rate)))));
    } else if (server_->blocking_pool != nullptr && MayWait(req)) {
      // Off this I/O thread, so that the other connections it serves are not held up while
      // the handler waits, and so that writes of many connections are in flight together
      // (the event store commits them as one group). The work guard keeps this connection's
      // event loop running until the response is handed back to it.
      auto executor = stream_.get_executor();
      net::post(*server_->blocking_pool,
                [self = this->shared_from_this(), req = std::move(req), keep_alive, start,
                 work = net::make_work_guard(executor)]() mutable {
                  SetThisThreadNice(self->server_->options.blocking_nice);
                  HttpResponse answer = self->server_->handler(req);
                  net::post(work.get_executor(), [self, answer = std::move(answer),
                                                  req = std::move(req), keep_alive,
                                                  start]() mutable {
                    self->Write(std::move(answer), keep_alive, req, start);
                  });
                });
      return;
    } else {
      res = server_->handler(req);
    }
    Write(std::move(res), keep_alive, req, start);
  }

  bool TakeToken() {
    const double rate = options().max_requests_per_second_per_connection;
    if (rate <= 0) return true;
    const auto now = Clock::now();
    tokens_ =
        std::min(rate, tokens_ + rate * std::chrono::duration<double>(now - refilled_).count());
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
    tcp_layer().expires_after(options().write_timeout);
    http::async_write(stream_, *msg,
                      [self = this->shared_from_this(), keep_alive](
                          beast::error_code ec, std::size_t) { self->OnWrite(keep_alive, ec); });
  }

  void OnWrite(bool keep_alive, beast::error_code ec) {
    response_.reset();
    if (ec || !keep_alive) return Close();
    WaitForRequest();
  }

  // Over TLS, first the close_notify exchange (bounded: a peer that never answers it, or has
  // gone, is given kCloseTimeout), then the lingering close of the TCP connection.
  void Close() {
    if constexpr (kTls) {
      if (handshake_done_) {
        handshake_done_ = false;
        tcp_layer().expires_after(kCloseTimeout);
        stream_.async_shutdown(
            [self = this->shared_from_this()](beast::error_code) { self->LingeringClose(); });
        return;
      }
    }
    LingeringClose();
  }

  // Lingering close: stop sending, then read and discard what the client still sends until it
  // closes (or kCloseTimeout passes). Closing a socket with unread bytes makes the kernel reset
  // the connection, which can destroy our last response (a 413, say) before the client reads
  // it. The socket closes when the last handler holding this session returns.
  void LingeringClose() {
    beast::error_code ec;
    socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return;
    tcp_layer().expires_after(kCloseTimeout);
    Discard();
  }

  // Raw bytes from the TCP layer: after a TLS close they are no longer TLS records to decrypt.
  void Discard() {
    tcp_layer().async_read_some(net::buffer(discard_), [self = this->shared_from_this()](
                                                           beast::error_code ec, std::size_t) {
      if (!ec) self->Discard();
    });
  }

  Stream stream_;
  SessionHost* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<void> response_;  // kept alive until written
  bool idle_ = false;
  bool handshake_done_ = false;  // TLS: a close sends close_notify first
  std::array<char, 4096> discard_;
  double tokens_;
  Clock::time_point refilled_;
  std::string remote_address_;  // the peer's IP address; empty if the socket could not say
};

}  // namespace recloop::http_internal

#endif  // RECLOOP_SERVING_HTTP_SESSION_H_
