#include "tests/pg_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

namespace recloop::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStartTimeout = std::chrono::seconds(30);
constexpr auto kStopTimeout = std::chrono::seconds(30);
constexpr auto kInitdbTimeout = std::chrono::seconds(120);

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string DescribeWait(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// The last bytes of the log written since offset `since`.
std::string LogTail(const std::string& path, std::streamoff since) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(std::max(since, size - 2000));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::streamoff LogSize(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::streamoff>(size);
}

// A port that was free on 127.0.0.1 a moment ago (the caller retries if it is taken since).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(Errno("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const std::string error = ok ? "" : Errno("bind 127.0.0.1:0");
  close(fd);
  if (!ok) return absl::InternalError(error);
  return ntohs(addr.sin_port);
}

// Writes `what` to stderr (the log) and ends a forked child before its exec.
[[noreturn]] void ChildFailed(const char* what) {
  const char* name = strerrorname_np(errno);  // "EPERM": a table lookup, no locale nor malloc
  const char* error = name != nullptr ? name : "error";
  for (const char* part : {"recloop pg_test_server: ", what, ": ", error, "\n"}) {
    if (write(2, part, std::strlen(part)) < 0) break;
  }
  _exit(126);
}

// Starts `args` as user uid/gid in folder `cwd`, stdout and stderr appended to `log`. The child
// gets SIGINT (PostgreSQL's fast shutdown) when the calling thread exits, and none of this
// process's other file descriptors (a listening socket kept open by PostgreSQL would outlive
// the test's server).
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log,
                            const std::string& cwd, uid_t uid, gid_t gid) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(Errno("open " + log));
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    return absl::InternalError(Errno("open /dev/null"));
  }
  const bool switch_user = geteuid() != uid;
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {  // Only async-signal-safe calls until exec.
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) _exit(126);
    if (close_range(3, ~0U, 0) != 0) ChildFailed("close_range");
    if (switch_user && (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
      ChildFailed("switching to the postgres user");
    }
    // After the user switch, which clears it; if the parent is already gone, stop here.
    if (prctl(PR_SET_PDEATHSIG, SIGINT) != 0 || getppid() != parent) ChildFailed("prctl");
    if (chdir(cwd.c_str()) != 0) ChildFailed(cwd.c_str());
    execv(argv[0], argv.data());
    ChildFailed(argv[0]);
  }
  const int fork_errno = errno;
  close(log_fd);
  close(null_fd);
  if (pid < 0) return absl::InternalError(std::string("fork: ") + std::strerror(fork_errno));
  return pid;
}

// Waits for child `pid` until `deadline`: its wait status, or DeadlineExceeded.
absl::StatusOr<int> WaitChild(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return absl::InternalError(Errno("waitpid"));
    if (Clock::now() > deadline) return absl::DeadlineExceededError("still running");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The state letter of process `pid` in /proc/PID/stat and its parent; '\0' if it is gone.
char ProcState(pid_t pid, long* ppid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  char state = '\0';
  if (paren == std::string::npos ||
      std::sscanf(stat.c_str() + paren + 1, " %c %ld", &state, ppid) != 2) {
    return '\0';
  }
  return state;
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    long ppid = 0;
    if (!name.empty() && std::isdigit(static_cast<unsigned char>(name[0])) &&
        ProcState(std::stoi(name), &ppid) != '\0' && ppid == parent) {
      children.push_back(std::stoi(name));
    }
  }
  return children;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTestServer>> PgTestServer::Start() {
  const char* env_bindir = std::getenv("RECLOOP_PG_BINDIR");
  const std::string bindir =
      env_bindir != nullptr && *env_bindir != '\0' ? env_bindir : "/usr/lib/postgresql/15/bin";
  for (const char* tool : {"initdb", "postgres"}) {
    if (access((bindir + "/" + tool).c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(
          "PostgreSQL 15 not found: " + bindir + "/" + tool +
          " is missing (run scripts/setup, which installs postgresql-15)");
    }
  }
  std::unique_ptr<PgTestServer> server(new PgTestServer());
  server->bindir_ = bindir;
  server->uid_ = geteuid();
  server->gid_ = getegid();
  if (server->uid_ == 0) {  // PostgreSQL refuses root: run it as Debian's system user.
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and there is no 'postgres' user to run PostgreSQL as (run "
          "scripts/setup: the postgresql-15 package creates it)");
    }
    server->uid_ = pw->pw_uid;
    server->gid_ = pw->pw_gid;
  }
  char dir[] = "/tmp/recloop_pg_XXXXXX";
  if (mkdtemp(dir) == nullptr) return absl::InternalError(Errno("mkdtemp"));
  server->dir_ = dir;  // from here on, the destructor removes it
  if (chown(dir, server->uid_, server->gid_) != 0) return absl::InternalError(Errno("chown"));

  const std::string log = server->LogPath();
  auto initdb = Spawn({bindir + "/initdb", "-D", server->dir_ + "/data", "--auth=trust", "-U",
                       "postgres", "--no-sync", "--encoding=UTF8", "--locale=C"},
                      log, server->dir_, server->uid_, server->gid_);
  if (!initdb.ok()) return initdb.status();
  auto status = WaitChild(*initdb, Clock::now() + kInitdbTimeout);
  if (!status.ok()) {
    kill(*initdb, SIGKILL);
    waitpid(*initdb, nullptr, 0);
  }
  if (!status.ok() || *status != 0) {
    return absl::InternalError("initdb failed (" +
                               (status.ok() ? DescribeWait(*status) : "timed out") +
                               "): " + LogTail(log, 0));
  }
  // Another process may take the port between FreePort() and the postmaster's bind: retry.
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<int> port = FreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    const absl::Status started = server->StartPostmaster();
    if (started.ok()) break;
    if (attempt == 5 || started.message().find("Address already in use") == std::string::npos) {
      return started;
    }
  }
  if (absl::Status s = server->CreateDatabase("recloop"); !s.ok()) return s;
  return server;
}

PgTestServer::~PgTestServer() {
  if (pid_ != 0) static_cast<void>(Stop());  // Stop() kills it if it will not stop
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PgTestServer::Url(const std::string& db) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string PgTestServer::LogPath() const { return dir_ + "/log"; }

absl::Status PgTestServer::StartPostmaster() {
  const std::string log = LogPath();
  const std::streamoff log_start = LogSize(log);
  const std::string port = std::to_string(port_);
  std::vector<std::string> args = {bindir_ + "/postgres", "-D", dir_ + "/data"};
  const std::vector<std::string> settings = {"listen_addresses=127.0.0.1",
                                             "port=" + port,
                                             "unix_socket_directories=" + dir_,
                                             "fsync=on",
                                             "synchronous_commit=on",
                                             "max_connections=100",
                                             "shared_buffers=32MB"};
  for (const std::string& setting : settings) {
    args.insert(args.end(), {"-c", setting});
  }
  auto pid = Spawn(args, log, dir_, uid_, gid_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  const std::string conninfo =
      "host=127.0.0.1 port=" + port + " user=postgres dbname=postgres connect_timeout=2";
  const Clock::time_point deadline = Clock::now() + kStartTimeout;
  while (PQping(conninfo.c_str()) != PQPING_OK) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      return absl::UnavailableError("postgres exited (" + DescribeWait(status) +
                                    ") before accepting connections on port " + port + ": " +
                                    LogTail(log, log_start));
    }
    if (Clock::now() > deadline) {
      static_cast<void>(Kill());
      return absl::DeadlineExceededError("postgres did not accept connections on port " + port +
                                         " within 30 s: " + LogTail(log, log_start));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

absl::Status PgTestServer::CreateDatabase(const std::string& name) {
  std::string quoted = "\"";
  for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return Query("CREATE DATABASE " + quoted + "\"", "postgres").status();
}

absl::Status PgTestServer::Stop() {
  if (pid_ == 0) return absl::FailedPreconditionError("PostgreSQL is not running");
  if (kill(pid_, SIGINT) != 0) return absl::InternalError(Errno("kill SIGINT"));
  const absl::StatusOr<int> status = WaitChild(pid_, Clock::now() + kStopTimeout);
  if (!status.ok()) {
    static_cast<void>(Kill());
    return absl::DeadlineExceededError("postgres did not stop within 30 s (killed): " +
                                       LogTail(LogPath(), 0));
  }
  pid_ = 0;  // a fast shutdown ends only after every backend has exited
  return absl::OkStatus();
}

absl::Status PgTestServer::Restart() {
  if (pid_ != 0) {
    if (absl::Status s = Stop(); !s.ok()) return s;
  }
  return StartPostmaster();
}

absl::Status PgTestServer::Kill() {
  if (pid_ == 0) return absl::FailedPreconditionError("PostgreSQL is not running");
  // Orphaned by the kill, the backends would go to init, which in a container may never reap
  // them (zombies). As a subreaper this process gets and reaps them itself.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // Stopped, the postmaster forks no new backend while they are listed and killed.
  kill(pid_, SIGSTOP);
  const std::vector<pid_t> children = ChildrenOf(pid_);
  for (pid_t child : children) kill(child, SIGKILL);
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = 0;
  // A new postmaster refuses to start while an old backend still holds the shared memory.
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
  for (pid_t child : children) {
    for (;;) {
      const pid_t r = waitpid(child, nullptr, WNOHANG);
      long ppid = 0;
      const char state = r < 0 && errno == ECHILD ? ProcState(child, &ppid) : 'R';
      if (r == child || state == '\0' || state == 'Z' || state == 'X') break;
      if (Clock::now() > deadline) {
        return absl::DeadlineExceededError("PostgreSQL process " + std::to_string(child) +
                                           " still running 10 s after SIGKILL");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> PgTestServer::Query(const std::string& sql,
                                                const std::string& db) const {
  const std::unique_ptr<PGconn, void (*)(PGconn*)> conn(
      PQconnectdb((Url(db) + "?connect_timeout=10").c_str()), PQfinish);
  if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError("connect to " + Url(db) + ": " +
                                  (conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  const std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn.get(), sql.c_str()),
                                                              PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return absl::InternalError(sql + ": " + PQerrorMessage(conn.get()));
  }
  if (PQntuples(result.get()) == 0 || PQnfields(result.get()) == 0) return std::string();
  return std::string(PQgetvalue(result.get(), 0, 0));
}

}  // namespace recloop::test
