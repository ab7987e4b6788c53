// SqliteEventStore: the event store (data/event_store.h) in an SQLite database in WAL mode with
// synchronous=FULL, beside one server, so that data teams can query it with `sqlite3`.
//
// Group commit: every write (Append, DeleteUser) is handed to one writer thread, which runs all
// the writes waiting at that moment in one transaction and one fsync, then wakes their callers.
// Under concurrent load many requests share an fsync; alone, a request pays for one. The WAL is
// checkpointed into the database by a thread of its own (PASSIVE, once the WAL holds
// kCheckpointPages pages), not by the commit that happens to cross SQLite's threshold.
#ifndef RECLOOP_DATA_SQLITE_EVENT_STORE_H_
#define RECLOOP_DATA_SQLITE_EVENT_STORE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "data/event_store.h"

struct sqlite3;

namespace recloop {

class SqliteEventStore final : public EventStore {
 public:
  // EventStore::Open for a file path.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const EventStoreOptions& options);
  ~SqliteEventStore() override;

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

 private:
  struct Write;  // one caller's write, run inside the writer's transaction

  class Reader;  // a pooled read connection, borrowed for one read

  struct WriterStatements;
  // The checkpointer runs once the WAL holds this many pages (SQLite's own threshold).
  static constexpr int kCheckpointPages = 1000;
  SqliteEventStore(EventStoreOptions options, sqlite3* writer,
                   std::unique_ptr<WriterStatements> writer_stmts, std::vector<sqlite3*> readers,
                   sqlite3* checkpoint_db);
  absl::Status Submit(std::function<absl::Status(sqlite3*)> run);
  void WriterLoop();
  void CheckpointLoop();

  EventStoreOptions options_;
  sqlite3* writer_db_;  // used by the writer thread only
  // Statements of the writer connection, prepared once in Open (the writer thread's only).
  std::unique_ptr<WriterStatements> writer_stmts_;
  std::vector<sqlite3*> readers_;  // owned; each used by one Reader at a time
  mutable std::mutex readers_mu_;
  mutable std::condition_variable readers_cv_;
  mutable std::vector<sqlite3*> free_readers_ ABSL_GUARDED_BY(readers_mu_);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Write*> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;

  sqlite3* checkpoint_db_;  // used by the checkpointer thread only
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  int wal_pages_ ABSL_GUARDED_BY(checkpoint_mu_) = 0;  // after the last commit
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpointer_;
};

}  // namespace recloop

#endif  // RECLOOP_DATA_SQLITE_EVENT_STORE_H_
