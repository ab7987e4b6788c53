// EventStore: the durable log of feedback events (views, clicks, purchases, ratings, dislikes)
// that storefronts send, in an SQLite database in WAL mode with synchronous=FULL, so that data
// teams can query it with `sqlite3` and an event acknowledged to a client survives a crash.
//
// Group commit: every write (Append, DeleteUser) is handed to one writer thread, which runs all
// the writes waiting at that moment in one transaction and one fsync, then wakes their callers.
// Under concurrent load many requests share an fsync; alone, a request pays for one. The WAL is
// checkpointed into the database by a thread of its own (PASSIVE, once the WAL holds
// kCheckpointPages pages), not by the commit that happens to cross SQLite's threshold.
//
// Events may carry a client-chosen `id`: an event whose id is already stored is not stored
// again (reported as a duplicate), so a client that retries a batch after a lost answer never
// doubles it.
#ifndef RECLOOP_DATA_EVENT_STORE_H_
#define RECLOOP_DATA_EVENT_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

namespace recloop {

// Event types and the weight an event of the type counts for in implicit models when it has no
// value (data/event_interactions.h). A negative weight is negative feedback.
using TypeWeights = std::map<std::string, float, std::less<>>;

// view 1, click 2, cart 3, purchase 5, dislike -5.
TypeWeights DefaultTypeWeights();

struct Event {
  std::string user;
  std::string item;
  std::string type;            // "view", "click", "cart", "purchase", "rating", "dislike", ...
  std::optional<float> value;  // none: the type's weight at training time
  int64_t timestamp = 0;       // seconds since the epoch
  std::string id;              // optional idempotency key; empty = none
};

// What is wrong with an event, or "" if nothing: user, item and type must be non-empty, without
// commas or control characters (the store exports CSV), at most 256 bytes (type: 32), value
// finite, timestamp not negative.
std::string EventError(const Event& event);

struct StoredEvent {
  int64_t seq = 0;  // position in the log, increasing
  Event event;
};

// A list a customer was shown (serving/impression_log.h): one row of the `impressions` table.
// `items` is the list as JSON, [[item, source], ...] in position order (position 1 first).
struct ImpressionRecord {
  std::string id;     // the response's recommendation_id
  std::string user;   // empty for lists without a customer (popular, similar items)
  std::string route;  // "recommendations", "similar" or "popular"
  std::string model_version;
  std::string variant;  // empty outside an experiment
  int64_t at_ms = 0;    // when it was served, milliseconds since the epoch
  std::string items;
};

// A feedback event credited to a list it was shown in: one row of the `attributions` table.
struct AttributionRecord {
  std::string recommendation_id;
  std::string user;
  std::string item;
  std::string type;
  int position = 0;  // 1-based, in the impression's list
  std::string model_version;
  std::string variant;
  int64_t at_ms = 0;  // when the event was acknowledged
};

struct AppendResult {
  int64_t stored = 0;      // events written
  int64_t duplicates = 0;  // events skipped because their id was already stored
  int64_t last_seq = 0;    // seq of the last event written (0 if none)
};

struct EventStoreOptions {
  // The database file; created (with its directory's WAL files) when missing.
  std::string path;
  // A writer transaction takes at most this many waiting writes (bounds one commit's latency).
  int max_writes_per_commit = 1024;
  // Read connections (reads run concurrently with each other and with the writer, WAL mode).
  int readers = 4;
  // Page cache of the writer connection and of each reader, in MiB (SQLite's default is 2):
  // an append updates a random leaf of the per-user index, which should stay in memory.
  int writer_cache_mib = 64;
  int reader_cache_mib = 16;
};

// Thread safety: every method may be called from any number of threads at once.
class EventStore {
 public:
  // Opens or creates the store. Errors: InvalidArgument for bad options; Unavailable naming the
  // path if it cannot be opened or is not an event store.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const EventStoreOptions& options);
  ~EventStore();  // finishes the writes already handed over
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Stores `events` in order, all or none; durable when it returns OK. Errors: InvalidArgument
  // naming the first event that EventError refuses; Internal with SQLite's message (nothing of
  // this call is stored then).
  absl::StatusOr<AppendResult> Append(std::span<const Event> events);

  // Erases every event of `user` and records the erasure (ErasedAt); durable when it returns.
  // Returns how many events were erased.
  absl::StatusOr<int64_t> DeleteUser(const std::string& user);

  // The events of `user` with seq > after_seq in log order, at most `limit` of the most recent
  // ones (0 = all).
  absl::StatusOr<std::vector<StoredEvent>> UserEvents(const std::string& user, int64_t limit = 0,
                                                      int64_t after_seq = 0) const;

  // The LastSeq() at the user's latest erasure, or -1 if the user was never erased. A model
  // trained on events up to seq S may hold the user's erased interactions if ErasedAt >= S (at
  // equality it may not, but then it holds no row of the user to ignore).
  absl::StatusOr<int64_t> ErasedAt(const std::string& user) const;
  // What a fold of one user reads: UserEvents(user, 0, after_seq) and ErasedAt(user).
  struct UserHistory {
    std::vector<StoredEvent> events;
    int64_t erased_at = -1;
  };
  // The UserHistory of each of `users` (in their order), read in one read transaction with each
  // statement prepared once: the fold queue's batched read (serving/feedback_folder.h).
  absl::StatusOr<std::vector<UserHistory>> Histories(std::span<const std::string> users,
                                                     int64_t after_seq) const;
  // Every (user, ErasedAt) with ErasedAt >= after_seq, by user.
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Erasures(int64_t after_seq) const;

  // Calls `fn` for every event with after_seq < seq <= through_seq (0: no upper bound), in log
  // order, until it returns false. Writes that commit meanwhile may or may not be seen.
  absl::Status ForEach(int64_t after_seq, const std::function<bool(const StoredEvent&)>& fn,
                       int64_t through_seq = 0) const;

  // Number of events stored, and the largest seq ever assigned (0 for an empty store; it does
  // not go down when events are erased).
  absl::StatusOr<int64_t> Count() const;
  absl::StatusOr<int64_t> LastSeq() const;

  // Writes every event as CSV with header `user,item,type,value,timestamp` (an empty value
  // where the event has none), the file `recloop train --data` reads. Returns the rows written.
  // Errors name the file.
  absl::StatusOr<int64_t> ExportCsv(const std::string& path) const;

  // Stores impressions and attributions in one transaction of the writer (serving/
  // impression_log.h batches them off the request path; ids are random, 128 bits, so they are
  // not checked for repeats). Errors: the store's.
  absl::Status AppendImpressions(std::span<const ImpressionRecord> impressions,
                                 std::span<const AttributionRecord> attributions);
  // Calls `fn` for every stored impression, or attribution, in the order stored, until it
  // returns false (on a read connection of its own). Errors: the store's.
  absl::Status ForEachImpression(const std::function<bool(const ImpressionRecord&)>& fn) const;
  absl::Status ForEachAttribution(const std::function<bool(const AttributionRecord&)>& fn) const;
  // Writes every impression as JSON Lines, {"recommendation_id","user","route",
  // "model_version","variant","at_ms","items":[[item,source],...]} in the order stored, then
  // every attribution likewise, {"attribution":{...}} (the keys of AttributionRecord). Returns
  // the lines written. Errors name the file.
  absl::StatusOr<int64_t> ExportImpressions(const std::string& path) const;

  // Writes (Append, DeleteUser) handed to the writer thread and not yet finished: waiting for
  // a transaction or in the one running. Each caller waits for its write, so this is at most
  // the number of threads writing. A snapshot, readable without a lock.
  int64_t pending_writes() const { return pending_writes_.load(std::memory_order_relaxed); }

  const std::string& path() const { return options_.path; }
  // A random ID given to the store when it was created: a model records it beside the last seq
  // it trained on, so that a model is never matched against the seqs of another store.
  const std::string& id() const { return id_; }

 private:
  struct Write;  // one caller's write, run inside the writer's transaction

  class Reader;  // a pooled read connection, borrowed for one read

  struct WriterStatements;
  // The checkpointer runs once the WAL holds this many pages (SQLite's own threshold).
  static constexpr int kCheckpointPages = 1000;
  EventStore(EventStoreOptions options, sqlite3* writer,
             std::unique_ptr<WriterStatements> writer_stmts, std::vector<sqlite3*> readers,
             sqlite3* checkpoint_db);
  absl::Status Submit(std::function<absl::Status(sqlite3*)> run);
  void WriterLoop();
  void CheckpointLoop();

  EventStoreOptions options_;
  std::string id_;
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
  std::atomic<int64_t> pending_writes_{0};  // handed over, not yet done (pending_writes())
  std::thread writer_;

  sqlite3* checkpoint_db_;  // used by the checkpointer thread only
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  int wal_pages_ ABSL_GUARDED_BY(checkpoint_mu_) = 0;  // after the last commit
  bool checkpoint_stop_ ABSL_GUARDED_BY(checkpoint_mu_) = false;
  std::thread checkpointer_;
};

}  // namespace recloop

#endif  // RECLOOP_DATA_EVENT_STORE_H_
