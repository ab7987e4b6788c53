// The PostgreSQL 15 test server: a real cluster that starts, keeps committed data across a
// restart and a crash, runs beside another, and leaves no process behind. If PostgreSQL cannot
// start these tests fail with the reason; they never skip.
#include "tests/pg_test_server.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop::test {
namespace {

// A client connection held open across the server's stop or crash.
struct Client {
  explicit Client(const std::string& url) : conn(PQconnectdb(url.c_str()), PQfinish) {}
  bool ok() const { return PQstatus(conn.get()) == CONNECTION_OK; }
  // The first value of `sql`, or "ERROR: ..." when it fails.
  std::string Get(const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(conn.get(), sql.c_str()), PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      return std::string("ERROR: ") + PQerrorMessage(conn.get());
    }
    return PQgetvalue(r.get(), 0, 0);
  }
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn;
};

// True once process `pid` has exited (gone, or a zombie waiting for a parent that is not us).
bool ProcessGone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// The real user id of process `pid`, from /proc/PID/status; -1 if unknown.
int ProcessUid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Uid:", 0) != 0) continue;
    int uid = -1;
    std::istringstream(line.substr(4)) >> uid;
    return uid;
  }
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(PgTestServer, StartsAsAnUnprivilegedUserAndAnswers) {
  ASSERT_OK_AND_ASSIGN(auto server, PgTestServer::Start());
  EXPECT_GT(server->port(), 0);
  EXPECT_EQ(server->Url(),
            "postgresql://postgres@127.0.0.1:" + std::to_string(server->port()) + "/recloop");
  ASSERT_OK_AND_ASSIGN(const std::string one, server->Query("SELECT 1"));
  EXPECT_EQ(one, "1");
  ASSERT_OK_AND_ASSIGN(const std::string db, server->Query("SELECT current_database()"));
  EXPECT_EQ(db, "recloop");
  // Durability is real: the crash tests built on this server mean something.
  EXPECT_EQ(server->Query("SHOW fsync").value_or("?"), "on");
  EXPECT_EQ(server->Query("SHOW synchronous_commit").value_or("?"), "on");
  EXPECT_EQ(server->Query("SHOW listen_addresses").value_or("?"), "127.0.0.1");
  // PostgreSQL refuses root; the postmaster runs as an ordinary user (uid != 0).
  const int uid = ProcessUid(server->pid());
  ASSERT_GE(uid, 0);
  EXPECT_NE(uid, 0);
  // Errors carry the server's message.
  const auto bad = server->Query("SELECT * FROM no_such_table");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("no_such_table"), std::string::npos) << bad.status();
  ASSERT_OK(server->CreateDatabase("other"));
  EXPECT_EQ(server->Query("SELECT 2", "other").value_or("?"), "2");
}

TEST(PgTestServer, CommittedDataSurvivesRestartOnTheSamePort) {
  ASSERT_OK_AND_ASSIGN(auto server, PgTestServer::Start());
  ASSERT_OK(server->Query("CREATE TABLE t (k int PRIMARY KEY, v text)"));
  ASSERT_OK(server->Query("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g"));
  const int port = server->port();
  const pid_t old_pid = server->pid();
  Client client(server->Url());
  ASSERT_TRUE(client.ok());
  ASSERT_OK(server->Restart());
  EXPECT_EQ(server->port(), port);
  EXPECT_NE(server->pid(), old_pid);
  // The old connection was closed by the shutdown; a new one on the same URL works.
  EXPECT_EQ(client.Get("SELECT 1").rfind("ERROR: ", 0), 0u);
  EXPECT_EQ(server->Query("SELECT count(*) FROM t").value_or("?"), "1000");
  EXPECT_EQ(server->Query("SELECT v FROM t WHERE k = 777").value_or("?"), "v777");
  ASSERT_OK(server->Stop());
  EXPECT_EQ(server->pid(), 0);
  EXPECT_FALSE(server->Query("SELECT 1").ok());
  ASSERT_OK(server->Restart());
  EXPECT_EQ(server->Query("SELECT count(*) FROM t").value_or("?"), "1000");
}

TEST(PgTestServer, KillIsACrashAndRestartRecoversCommittedData) {
  ASSERT_OK_AND_ASSIGN(auto server, PgTestServer::Start());
  ASSERT_OK(server->Query("CREATE TABLE t (k int PRIMARY KEY)"));
  ASSERT_OK(server->Query("INSERT INTO t SELECT generate_series(1, 500)"));
  Client client(server->Url());
  ASSERT_TRUE(client.ok());
  const pid_t backend = std::atoi(client.Get("SELECT pg_backend_pid()").c_str());
  ASSERT_GT(backend, 0);
  // Committed just before the crash, with no checkpoint since: only the WAL has it.
  ASSERT_EQ(client.Get("WITH i AS (INSERT INTO t VALUES (501) RETURNING k) SELECT k FROM i"),
            "501");
  const pid_t postmaster = server->pid();

  ASSERT_OK(server->Kill());
  EXPECT_TRUE(ProcessGone(postmaster));
  EXPECT_TRUE(ProcessGone(backend));
  EXPECT_EQ(client.Get("SELECT 1").rfind("ERROR: ", 0), 0u);
  const auto down = server->Query("SELECT 1");
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.status().message().find("connect"), std::string::npos) << down.status();

  ASSERT_OK(server->Restart());
  EXPECT_EQ(server->Query("SELECT count(*) FROM t").value_or("?"), "501");
  EXPECT_EQ(server->Query("SELECT max(k) FROM t").value_or("?"), "501");
  // It was a crash: the restarted server ran crash recovery.
  EXPECT_NE(ReadFile(server->LogPath()).find("not properly shut down"), std::string::npos)
      << ReadFile(server->LogPath());
}

TEST(PgTestServer, TwoServersRunSideBySide) {
  ASSERT_OK_AND_ASSIGN(auto a, PgTestServer::Start());
  ASSERT_OK_AND_ASSIGN(auto b, PgTestServer::Start());
  EXPECT_NE(a->port(), b->port());
  ASSERT_OK(a->Query("CREATE TABLE only_in_a (k int)"));
  EXPECT_EQ(a->Query("SELECT to_regclass('only_in_a') IS NOT NULL").value_or("?"), "t");
  EXPECT_EQ(b->Query("SELECT to_regclass('only_in_a') IS NOT NULL").value_or("?"), "f");
  ASSERT_OK(a->Kill());
  EXPECT_EQ(b->Query("SELECT 1").value_or("?"), "1");
}

TEST(PgTestServer, DestructorLeavesNoProcessNorFolder) {
  ASSERT_OK_AND_ASSIGN(auto server, PgTestServer::Start());
  Client client(server->Url());
  ASSERT_TRUE(client.ok());
  const pid_t backend = std::atoi(client.Get("SELECT pg_backend_pid()").c_str());
  const pid_t postmaster = server->pid();
  const std::string data_dir = server->Query("SHOW data_directory").value_or("");
  ASSERT_GT(backend, 0);
  ASSERT_GT(postmaster, 0);
  ASSERT_TRUE(std::filesystem::exists(data_dir)) << data_dir;
  EXPECT_EQ(kill(postmaster, 0), 0);
  server.reset();
  // The postmaster was our child and is reaped; its backends ended before it did.
  EXPECT_EQ(kill(postmaster, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_TRUE(ProcessGone(backend));
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(data_dir).parent_path()));
}

TEST(PgTestServer, AStartThatFailsSaysWhyFromTheServerLog) {
  ASSERT_OK_AND_ASSIGN(auto server, PgTestServer::Start());
  ASSERT_OK(server->Query("CREATE TABLE t (k int)"));
  ASSERT_OK(server->Stop());
  // Another program takes the port meanwhile: the restart fails, with PostgreSQL's own words.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int one = 1;  // the server's closed connections may be in TIME_WAIT on that port
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(server->port());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << errno;
  ASSERT_EQ(listen(fd, 1), 0);
  const absl::Status taken = server->Restart();
  close(fd);
  ASSERT_FALSE(taken.ok());
  EXPECT_NE(taken.message().find("Address already in use"), std::string::npos) << taken;
  EXPECT_EQ(server->pid(), 0);
  // Once the port is free again the same cluster starts, its data intact.
  ASSERT_OK(server->Restart());
  EXPECT_EQ(server->Query("SELECT to_regclass('t') IS NOT NULL").value_or("?"), "t");
}

TEST(PgTestServer, MissingBinariesFailWithTheReason) {
  ASSERT_EQ(setenv("RECLOOP_PG_BINDIR", "/nonexistent/postgresql/bin", 1), 0);
  const auto server = PgTestServer::Start();
  unsetenv("RECLOOP_PG_BINDIR");
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(server.status().message().find("/nonexistent/postgresql/bin/initdb"), std::string::npos)
      << server.status();
  EXPECT_NE(server.status().message().find("run scripts/setup"), std::string::npos);
}

}  // namespace
}  // namespace recloop::test
