// A blocking HTTP/1.1 client for the serving tests: one connection to 127.0.0.1:port, reused
// for several requests (keep-alive), with raw-bytes helpers for malformed-request tests.
#ifndef RECLOOP_TESTS_SERVING_TEST_CLIENT_H_
#define RECLOOP_TESTS_SERVING_TEST_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "nlohmann/json.hpp"

namespace recloop::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Reply {
  int status = 0;
  std::string body;
  std::string allow;
  std::string content_type;
  std::string retry_after;  // the Retry-After header, if any
  bool keep_alive = false;
  // Every header field as received, for header checks (Header()).
  std::vector<std::pair<std::string, std::string>> headers;
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
  // The value of the first field named `name` (case-insensitive), or "" if there is none.
  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (beast::iequals(n, name)) return v;
    }
    return "";
  }
  bool HasHeader(const std::string& name) const {
    for (const auto& field : headers) {
      if (beast::iequals(field.first, name)) return true;
    }
    return false;
  }
};

// A client connection to 127.0.0.1:port (keep-alive: several requests may share it).
class Client {
 public:
  explicit Client(uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    stream_.expires_after(std::chrono::seconds(10));
  }

  Reply Send(http::verb verb, const std::string& target, const std::string& body = "",
             const std::string& content_type = "application/json",
             const std::string& auth = "") {
    http::request<http::string_body> req(verb, target, 11);
    req.set(http::field::host, "127.0.0.1");
    if (!auth.empty()) req.set(http::field::authorization, auth);
    if (!body.empty() || verb == http::verb::put) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
      req.prepare_payload();
    }
    stream_.expires_after(std::chrono::seconds(10));
    http::write(stream_, req);
    return Read();
  }
  Reply Get(const std::string& target) { return Send(http::verb::get, target); }

  // Sends raw bytes and reads one response (or returns status 0 if the server closed).
  Reply SendRaw(const std::string& raw) {
    net::write(stream_.socket(), net::buffer(raw));
    return Read();
  }

  // True if the server closed the connection (reads hit end of stream) within `timeout`.
  bool ClosedWithin(std::chrono::milliseconds timeout) {
    stream_.expires_after(timeout);
    char c;
    beast::error_code ec;
    stream_.read_some(net::buffer(&c, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

  beast::tcp_stream& stream() { return stream_; }

 private:
  Reply Read() {
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(stream_, buffer_, res, ec);
    Reply r;
    if (ec) return r;
    r.status = res.result_int();
    r.body = res.body();
    r.allow = std::string(res[http::field::allow]);
    r.content_type = std::string(res[http::field::content_type]);
    r.retry_after = std::string(res[http::field::retry_after]);
    r.keep_alive = res.keep_alive();
    for (const auto& field : res) {
      r.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    return r;
  }

  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_SERVING_TEST_CLIENT_H_
