// A real, throwaway PostgreSQL 15 server for tests: initdb into a fresh folder under /tmp, the
// postmaster on 127.0.0.1 at a free port, stopped and removed with the object. Debian's
// postgresql-15 (scripts/setup installs it) provides the binaries; RECLOOP_PG_BINDIR overrides
// their folder. PostgreSQL refuses to run as root, so when the test runs as root (as CI does)
// the server runs as Debian's `postgres` system user.
//
// The cluster trusts every connection on loopback (no password): it is a throwaway cluster
// that only listens on 127.0.0.1 and on a socket inside its own 0700 folder. Durability stays
// real (fsync and synchronous_commit on), so Kill() followed by Restart() is a crash recovery.
//
// Thread safety: Url(), port() and Query() may be called from any thread (Query opens its own
// connection); Start, Stop, Restart, Kill and the destructor from one thread at a time. The
// postmaster is told to shut down when the thread that started it exits (so a test killed by
// a timeout leaks no server, only its folder): call Start() and Restart() from a thread that
// outlives the server, such as the test's main thread.
#ifndef RECLOOP_TESTS_PG_TEST_SERVER_H_
#define RECLOOP_TESTS_PG_TEST_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recloop::test {

class PgTestServer {
 public:
  // Creates a fresh cluster with a database "recloop" and starts it, waiting (at most 30 s)
  // until it accepts connections. The error says why it could not (a missing binary or user,
  // with "run scripts/setup", or the tail of the server's log).
  static absl::StatusOr<std::unique_ptr<PgTestServer>> Start();

  // Stops the server (fast shutdown, else SIGKILL) and removes its folder.
  ~PgTestServer();
  PgTestServer(const PgTestServer&) = delete;
  PgTestServer& operator=(const PgTestServer&) = delete;

  // postgresql://postgres@127.0.0.1:PORT/db
  std::string Url(const std::string& db = "recloop") const;
  int port() const { return port_; }
  // The postmaster's process id while it runs, else 0.
  pid_t pid() const { return pid_; }
  // The server's log (its stderr).
  std::string LogPath() const;

  absl::Status CreateDatabase(const std::string& name);

  // Fast shutdown (SIGINT: clients are disconnected, a checkpoint is written), data kept.
  // Error if it is not running or does not exit within 30 s (it is then killed).
  absl::Status Stop();
  // Stop() if running, then starts the same cluster again on the same port.
  absl::Status Restart();
  // A crash: SIGKILL to the postmaster and every process it forked, no checkpoint. Restart()
  // then runs crash recovery. Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER) so
  // that it reaps the killed backends itself.
  absl::Status Kill();

  // Runs one SQL statement through libpq (connect timeout 10 s) and returns the first column
  // of the first row, "" when there is none. The error carries the server's message.
  absl::StatusOr<std::string> Query(const std::string& sql,
                                    const std::string& db = "recloop") const;

 private:
  PgTestServer() = default;
  absl::Status StartPostmaster();
  absl::Status WaitReady();

  std::string dir_;     // the temporary folder: data/, the socket, log
  std::string bindir_;  // initdb and postgres
  uid_t uid_ = 0;       // the user the server runs as
  gid_t gid_ = 0;
  int port_ = 0;
  pid_t pid_ = 0;  // the postmaster, our child
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_PG_TEST_SERVER_H_
