// PgEventStore: the event store (data/event_store.h) in PostgreSQL, through libpq, shared by any
// number of servers (replicas, docs/scaling.md). `recloop serve --events postgresql://...`.
//
// Tables (created when missing, under an advisory lock so that replicas starting together do
// not race): events(seq, user_id, item_id, type, value, ts, event_id UNIQUE), erasures,
// recloop_seq (the high-water seq, one row), meta (the store's id), impressions, attributions.
//
// Seqs follow commit order: a write locks the recloop_seq row (SELECT ... FOR UPDATE) for its
// whole transaction, so two writes, from any servers, commit one after the other and the later
// one's seqs are larger. A server that has read every event up to seq S therefore never sees a
// smaller seq appear later, which is what lets replicas follow the log by seq alone
// (serving/replica_follower.h). The price is one commit (one WAL flush) at a time across the
// whole deployment: figures in BENCHMARKS.md. An erasure takes a seq of its own.
//
// Every write NOTIFYs the channel `recloop_events`, delivered at commit, which wakes the other
// servers' followers (WaitForWrites). A broken connection (the server restarting, a network
// cut) makes calls fail with Unavailable; the next call reconnects.
#ifndef RECLOOP_DATA_PG_EVENT_STORE_H_
#define RECLOOP_DATA_PG_EVENT_STORE_H_

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "data/event_store.h"
#include "data/pg_db.h"

typedef struct pg_conn PGconn;

namespace recloop {

class PgEventStore final : public EventStore {
 public:
  // EventStore::Open for a postgresql:// URL: connects, creates the tables when missing. Errors:
  // Unavailable naming the URL (without its password) and libpq's message.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const EventStoreOptions& options);
  ~PgEventStore() override;

  absl::StatusOr<AppendResult> Append(std::span<const Event> events) override;
  absl::StatusOr<int64_t> DeleteUser(const std::string& user) override;
  absl::StatusOr<std::vector<StoredEvent>> UserEvents(const std::string& user, int64_t limit,
                                                      int64_t after_seq) const override;
  absl::StatusOr<int64_t> ErasedAt(const std::string& user) const override;
  absl::StatusOr<std::vector<UserHistory>> Histories(std::span<const std::string> users,
                                                     int64_t after_seq) const override;
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Erasures(
      int64_t after_seq) const override;
  absl::Status ForEach(int64_t after_seq, const std::function<bool(const StoredEvent&)>& fn,
                       int64_t through_seq) const override;
  absl::StatusOr<int64_t> Count() const override;
  absl::StatusOr<int64_t> LastSeq() const override;
  absl::Status AppendImpressions(std::span<const ImpressionRecord> impressions,
                                 std::span<const AttributionRecord> attributions) override;
  absl::Status ForEachImpression(
      const std::function<bool(const ImpressionRecord&)>& fn) const override;
  absl::Status ForEachAttribution(
      const std::function<bool(const AttributionRecord&)>& fn) const override;

  bool shared() const override { return true; }
  bool WaitForWrites(int64_t after_seq, int timeout_ms) const override;
  absl::StatusOr<std::unique_ptr<StoreLock>> TryLock(const std::string& name) override;

  class Lease;  // a pooled connection, borrowed for one call

 private:
  PgEventStore(std::string url, std::vector<PGconn*> pool, PGconn* listener);
  // Runs `body` in a transaction on a borrowed connection; COMMIT if it returns OK, else
  // ROLLBACK. Errors: body's; Unavailable when the connection is broken.
  absl::Status Transaction(const std::function<absl::Status(PGconn*)>& body,
                           bool read_only = false) const;

  std::string url_;  // with the password, for connecting
  std::vector<PGconn*> pool_;
  mutable std::mutex pool_mu_;
  mutable std::condition_variable pool_cv_;
  mutable std::vector<PGconn*> free_ ABSL_GUARDED_BY(pool_mu_);

  mutable std::mutex listen_mu_;  // one WaitForWrites at a time on the LISTEN connection
  PGconn* listener_ ABSL_GUARDED_BY(listen_mu_);
};

}  // namespace recloop

#endif  // RECLOOP_DATA_PG_EVENT_STORE_H_
