// Test helpers for real `recloop serve` processes (RECLOOP_BINARY) on 127.0.0.1: a bounded
// keep-alive HTTP/1.1 client connection and a server child process that is always reaped.
#ifndef RECLOOP_TESTS_TOOLS_SERVER_PROCESS_H_
#define RECLOOP_TESTS_TOOLS_SERVER_PROCESS_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace recloop::test {

namespace server_process_internal {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
// Bounds on everything that waits for the server; far above what a healthy run needs.
constexpr seconds kIoTimeout{30};
constexpr seconds kStartTimeout{120};
constexpr seconds kStopTimeout{30};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace server_process_internal

using namespace server_process_internal;  // NOLINT: the helpers' own names, in tests only

// One keep-alive HTTP/1.1 connection to 127.0.0.1:port over a blocking socket whose connect,
// reads and writes time out (SO_SNDTIMEO/SO_RCVTIMEO), so a hung server cannot hang the test.
// Writes use MSG_NOSIGNAL: a peer killed mid-request must not raise SIGPIPE here.
class Connection {
 public:
  // `bearer`: an API key sent as "Authorization: Bearer KEY" with every request ("": none).
  explicit Connection(int port, std::string bearer = "") : port_(port), bearer_(std::move(bearer)) {
    Connect();
  }
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const { return fd_ >= 0; }

  // Sends one request and reads its answer. Returns the HTTP status, or 0 if no complete answer
  // came back (the connection is closed then). `*answer` gets the response body.
  // `*head` (if given) gets the status line and header fields, lower-cased.
  int Request(const std::string& method, const std::string& target, const std::string& body,
              std::string* answer, std::string* head_out = nullptr) {
    answer->clear();
    if (fd_ < 0) return 0;
    std::string req = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if (!bearer_.empty()) absl::StrAppend(&req, "Authorization: Bearer ", bearer_, "\r\n");
    if (!body.empty()) {
      absl::StrAppend(&req, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                      "\r\n");
    }
    absl::StrAppend(&req, "\r\n", body);
    for (size_t sent = 0; sent < req.size();) {
      const ssize_t n = send(fd_, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return Fail();
      }
      sent += static_cast<size_t>(n);
    }
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return Fail();
    }
    const std::string head = absl::AsciiStrToLower(buf_.substr(0, header_end + 2));
    if (head.rfind("http/1.1 ", 0) != 0 || head.size() < 12) return Fail();
    const int status = std::atoi(head.c_str() + 9);
    const size_t cl = head.find("\r\ncontent-length:");
    if (cl == std::string::npos) return Fail();  // the server always sends a length
    const size_t length = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
    const size_t body_start = header_end + 4;
    while (buf_.size() < body_start + length) {
      if (!Fill()) return Fail();
    }
    *answer = buf_.substr(body_start, length);
    if (head_out != nullptr) *head_out = head;
    buf_.erase(0, body_start + length);
    if (head.find("\r\nconnection: close") != std::string::npos) Close();
    return status;
  }

  // Opens a fresh connection if this one was closed by the server's `Connection: close`.
  void Reconnect() {
    if (fd_ < 0) Connect();
  }

 private:
  void Connect() {
    buf_.clear();
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(kIoTimeout.count());
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect() too
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Close();
  }
  bool Fill() {
    char chunk[16384];
    while (true) {
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;  // end of stream, reset or timeout
    }
  }
  int Fail() {
    Close();
    return 0;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  int port_;
  std::string bearer_;
  int fd_ = -1;
  std::string buf_;
};

// A `recloop serve` child process; killed (SIGKILL) and reaped by the destructor if still running,
// so a failed assertion never leaves a server behind.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Kill(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server on an ephemeral port of 127.0.0.1 and waits (bounded) for its
  // "listening on" line, which it prints once the socket accepts connections.
  ::testing::AssertionResult Start(const std::string& models, const std::string& events,
                                   const std::string& log,
                                   const std::vector<std::string>& extra_args = {}) {
    log_ = log;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> args = {RECLOOP_BINARY, "serve",  "--models",  models,   "--events",
                                     events,         "--host", "127.0.0.1", "--port", "0"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, RECLOOP_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "posix_spawn " << RECLOOP_BINARY << ": " << rc;
    }
    const auto deadline = Clock::now() + kStartTimeout;
    constexpr std::string_view kListening = "listening on http://127.0.0.1:";
    while (Clock::now() < deadline) {
      const std::string text = ReadFile(log);
      if (const size_t p = text.find(kListening); p != std::string::npos) {
        port_ = std::atoi(text.c_str() + p + kListening.size());
        if (port_ > 0) return ::testing::AssertionSuccess();
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return ::testing::AssertionFailure()
               << "recloop serve exited (status " << status << ") before listening; log:\n"
               << ReadFile(log);
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return ::testing::AssertionFailure()
           << "no listening line within " << kStartTimeout.count() << " s; log:\n"
           << ReadFile(log);
  }

  // SIGKILL and reap (SIGKILL cannot be caught, so the wait is bounded).
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // SIGTERM and wait (bounded) for a clean exit with status 0.
  ::testing::AssertionResult Stop() {
    if (pid_ <= 0) return ::testing::AssertionFailure() << "not running";
    kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + kStopTimeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) != pid_) {
      if (Clock::now() > deadline) {
        Kill();
        return ::testing::AssertionFailure()
               << "no exit within " << kStopTimeout.count() << " s of SIGTERM; log:\n"
               << ReadFile(log_);
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return ::testing::AssertionFailure() << "exit status " << status << " after SIGTERM; log:\n"
                                           << ReadFile(log_);
    }
    return ::testing::AssertionSuccess();
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_TOOLS_SERVER_PROCESS_H_
