// HttpServer: an asynchronous HTTP/1.1 server (Boost.Beast) that hands every complete request to
// a handler function (on the I/O thread that read it, or, for a request that may wait, on a pool
// of blocking threads), and writes the handler's response back.
// It owns the limits a public endpoint needs: header and body sizes, connection count, a
// per-connection request rate, idle and read timeouts (a client trickling a request byte by byte
// is cut off when the read timeout expires, without holding a thread), and a graceful stop that
// finishes the requests in flight. Optionally it speaks HTTPS itself (tls_cert_file), with the
// same limits, for deployments without a TLS-terminating proxy in front.
#ifndef RECLOOP_SERVING_HTTP_SERVER_H_
#define RECLOOP_SERVING_HTTP_SERVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "serving/http.h"

namespace recloop {

struct HttpServerOptions {
  // Address to listen on. The default serves this machine only; "0.0.0.0" serves the network.
  std::string host = "127.0.0.1";
  // TCP port; 0 picks a free ephemeral port (see HttpServer::port()).
  uint16_t port = 8080;
  // I/O threads; each parses, handles and answers the requests of its own connections (one
  // event loop per thread, nothing shared between them but the handler). 0 = one per core.
  int threads = 0;
  // Threads that run the requests which may wait (every method but GET, HEAD and OPTIONS: a
  // feedback or catalogue write waits for its commit to disk), so that a waiting request holds
  // up neither the other connections of its I/O thread nor the writes of other connections,
  // which the event store commits together. 0 = such requests run on their I/O thread too.
  int blocking_threads = 32;
  // Nice value (0..19) of the blocking threads (ServeOptions::write_nice): under CPU contention
  // the I/O threads, which answer reads, run first.
  int blocking_nice = 0;
  // Largest request header block in bytes; larger gets 431 and the connection is closed.
  uint32_t max_header_bytes = 8 * 1024;
  // Largest request body in bytes; larger gets 413 and the connection is closed.
  uint64_t max_body_bytes = 1024 * 1024;
  // Open connections at most; a connection past the limit gets 503 and is closed.
  int max_connections = 10'000;
  // A keep-alive connection with no request for this long is closed.
  std::chrono::milliseconds idle_timeout{30'000};
  // Once the first byte of a request has arrived, the whole request must arrive within this,
  // else the connection is closed (slow-loris protection).
  std::chrono::milliseconds read_timeout{10'000};
  // Writing one response must finish within this.
  std::chrono::milliseconds write_timeout{10'000};
  // Requests per second per connection (token bucket with a burst of the same size); beyond it
  // requests get 429. 0 = unlimited.
  double max_requests_per_second_per_connection = 0;
  // On Stop(): how long in-flight requests may take to finish before connections are closed.
  std::chrono::milliseconds drain_timeout{10'000};
  // HTTPS: PEM files of the server's certificate (chain, leaf first) and of its unencrypted
  // private key; both or neither. Empty (the default) = plain HTTP, as behind a proxy that
  // terminates TLS. With TLS the handshake must finish within read_timeout, TLS 1.2 is the
  // oldest version accepted, and a connection past max_connections is closed without an answer
  // (answering would need the handshake that the limit exists to bound).
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Called once per request on an I/O thread or a blocking thread (HttpServerOptions::
// blocking_threads); must be thread-safe (it runs on all of them at once)
// and must not throw. Connection management (keep-alive, Connection: close) is the server's.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Observes every answered request (for metrics and access logs): the request, the response and
// the microseconds from the request being fully read to the response being handed to the socket.
// Runs on the I/O thread; must be thread-safe.
using HttpObserver =
    std::function<void(const HttpRequest&, const HttpResponse&, double micros)>;

// Thread safety: Start, Run and Stop may be called from different threads; Stop may be called
// from any thread (e.g. a signal handler thread), also more than once.
class HttpServer {
 public:
  // Validates the options and loads the TLS certificate and key, if any. Errors:
  // InvalidArgument naming the bad option, or naming the certificate or key file that cannot be
  // read, is not PEM, or does not match the other.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(HttpServerOptions options,
                                                            HttpHandler handler,
                                                            HttpObserver observer = nullptr);
  // Create's checks of the options and the TLS files, without a server: for callers that want
  // those errors before they open anything else. Same errors as Create.
  static absl::Status CheckOptions(const HttpServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens. Errors: Unavailable if the address cannot be bound (in use, bad host).
  absl::Status Start();
  // The bound port (after Start; the ephemeral one when options.port was 0).
  uint16_t port() const;
  // True if the server speaks HTTPS (options.tls_cert_file was given).
  bool tls() const;
  // Serves until Stop() has drained every connection: options.threads I/O threads, each with its
  // own connections (assigned round-robin) and its own event loop, and the caller's thread,
  // which accepts and handles signals and timers only. Requires Start().
  void Run();
  // Stops accepting, lets requests in flight finish (up to drain_timeout), closes idle
  // connections, and makes Run() return.
  void Stop();
  // Calls Stop() on SIGINT or SIGTERM (handled on the server's own threads), and `on_hangup`,
  // if given, on every SIGHUP (on one of the server's threads, while it keeps serving). Call
  // before Run().
  void StopOnSignals(std::function<void()> on_hangup = nullptr);
  // Connections open now.
  int64_t open_connections() const;

  struct Impl;  // opaque (http_server.cc)

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  void AwaitSignal();
  std::unique_ptr<Impl> impl_;
};

// Answers the raw bytes of one or more pipelined HTTP/1.1 requests without a socket, as a session
// of a server with `options` would: the same parser and limits, error responses, handler and
// response serialisation (only the timeouts and the rate limit are left out). Returns the
// response bytes; empty where the server would close the connection without answering. This is
// the request-to-response path that the fuzz target (tests/fuzz) drives. Thread-compatible.
std::string AnswerRequestBytes(std::string_view raw, const HttpServerOptions& options,
                               const HttpHandler& handler);

}  // namespace recloop

#endif  // RECLOOP_SERVING_HTTP_SERVER_H_
