// EventStore: the durable log of feedback events (views, clicks, purchases, ratings, dislikes)
// that storefronts send, so that an event acknowledged to a client survives a crash and data
// teams can query and export it. Events may carry a client-chosen `id`: an event whose id is
// already stored is not stored again (reported as a duplicate), so a client that retries a
// batch after a lost answer never doubles it.
#ifndef RECLOOP_DATA_EVENT_STORE_H_
#define RECLOOP_DATA_EVENT_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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
  // Nice value (0..19) of the SQLite writer's thread (ServeOptions::write_nice). PostgreSQL
  // writes on the calling thread.
  int writer_nice = 0;
};

// A lock held across every server of a shared store (EventStore::TryLock); released when
// destroyed.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
};

// The durable event log. Two backends: an SQLite file beside one server (the embedded default,
// data/sqlite_event_store.h) and PostgreSQL, shared by any number of servers (replicas,
// data/pg_event_store.h). Both give the same guarantees: an event is acknowledged only after
// its transaction commits, a retried id counts once, an erasure is recorded, and seqs grow in
// commit order (a reader that has seen seq S has seen every event committed with a smaller one).
// Thread safety: every method may be called from any number of threads at once.
class EventStore {
 public:
  // Opens or creates the store: PostgreSQL when `options.path` is a postgresql:// (or
  // postgres://) URL, else the SQLite file at that path. Errors: InvalidArgument for bad
  // options; Unavailable naming the path if it cannot be opened or is not an event store.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(const EventStoreOptions& options);
  // Open for readers of a store that must exist already (export, train, replay): NotFound
  // naming the path for a missing SQLite file, where Open would create an empty store.
  static absl::StatusOr<std::unique_ptr<EventStore>> OpenExisting(const std::string& path);
  virtual ~EventStore() = default;  // finishes the writes already handed over
  EventStore(const EventStore&) = delete;
  EventStore& operator=(const EventStore&) = delete;

  // Stores `events` in order, all or none; durable when it returns OK. Errors: InvalidArgument
  // naming the first event that EventError refuses; Unavailable when the database cannot be
  // reached (nothing of this call is stored then, or, if the connection broke during the
  // commit, it may be: a retry with the same ids counts them once); Internal with the
  // database's message (nothing of this call is stored then).
  virtual absl::StatusOr<AppendResult> Append(std::span<const Event> events) = 0;

  // Erases every event of `user` and records the erasure (ErasedAt); durable when it returns.
  // Returns how many events were erased.
  virtual absl::StatusOr<int64_t> DeleteUser(const std::string& user) = 0;

  // The events of `user` with seq > after_seq in log order, at most `limit` of the most recent
  // ones (0 = all).
  virtual absl::StatusOr<std::vector<StoredEvent>> UserEvents(const std::string& user,
                                                              int64_t limit = 0,
                                                              int64_t after_seq = 0) const = 0;

  // The LastSeq() at the user's latest erasure, or -1 if the user was never erased. A model
  // trained on events up to seq S may hold the user's erased interactions if ErasedAt >= S (at
  // equality it may not, but then it holds no row of the user to ignore).
  virtual absl::StatusOr<int64_t> ErasedAt(const std::string& user) const = 0;
  // What a fold of one user reads: UserEvents(user, 0, after_seq) and ErasedAt(user).
  struct UserHistory {
    std::vector<StoredEvent> events;
    int64_t erased_at = -1;
  };
  // The UserHistory of each of `users` (in their order), read in one read transaction with each
  // statement prepared once: the fold queue's batched read (serving/feedback_folder.h).
  virtual absl::StatusOr<std::vector<UserHistory>> Histories(std::span<const std::string> users,
                                                             int64_t after_seq) const = 0;
  // Every (user, ErasedAt) with ErasedAt >= after_seq, by user.
  virtual absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> Erasures(
      int64_t after_seq) const = 0;

  // Calls `fn` for every event with after_seq < seq <= through_seq (0: no upper bound), in log
  // order, until it returns false. Writes that commit meanwhile may or may not be seen.
  virtual absl::Status ForEach(int64_t after_seq, const std::function<bool(const StoredEvent&)>& fn,
                               int64_t through_seq = 0) const = 0;

  // Number of events stored, and the largest seq ever assigned (0 for an empty store; it does
  // not go down when events are erased).
  virtual absl::StatusOr<int64_t> Count() const = 0;
  virtual absl::StatusOr<int64_t> LastSeq() const = 0;

  // Writes every event as CSV with header `user,item,type,value,timestamp` (an empty value
  // where the event has none), the file `recloop train --data` reads. Returns the rows written.
  // Errors name the file.
  absl::StatusOr<int64_t> ExportCsv(const std::string& path) const;

  // Stores impressions and attributions in one transaction of the writer (serving/
  // impression_log.h batches them off the request path; ids are random, 128 bits, so they are
  // not checked for repeats). Errors: the store's.
  virtual absl::Status AppendImpressions(std::span<const ImpressionRecord> impressions,
                                         std::span<const AttributionRecord> attributions) = 0;
  // Calls `fn` for every stored impression, or attribution, in the order stored, until it
  // returns false (on a read connection of its own). Errors: the store's.
  virtual absl::Status ForEachImpression(
      const std::function<bool(const ImpressionRecord&)>& fn) const = 0;
  virtual absl::Status ForEachAttribution(
      const std::function<bool(const AttributionRecord&)>& fn) const = 0;
  // Writes every impression as JSON Lines, {"recommendation_id","user","route",
  // "model_version","variant","at_ms","items":[[item,source],...]} in the order stored, then
  // every attribution likewise, {"attribution":{...}} (the keys of AttributionRecord). Returns
  // the lines written. Errors name the file.
  absl::StatusOr<int64_t> ExportImpressions(const std::string& path) const;

  // Writes (Append, DeleteUser) handed over and not yet finished: waiting for a transaction or
  // in the one running. Each caller waits for its write, so this is at most the number of
  // threads writing. A snapshot, readable without a lock.
  int64_t pending_writes() const { return pending_writes_.load(std::memory_order_relaxed); }

  // True when other servers may write to the same store (PostgreSQL): a server then follows
  // the log (serving/replica_follower.h) to fold in what they acknowledge.
  virtual bool shared() const { return false; }
  // Returns once a write committed after the call may have raised LastSeq() past `after_seq`
  // (PostgreSQL: a notification from any server), or after `timeout_ms`; true if woken by a
  // write. A store no other server writes to sleeps until the timeout.
  virtual bool WaitForWrites(int64_t after_seq, int timeout_ms) const;
  // Takes the lock `name` across every server of the store, or returns null at once if another
  // holds it (PostgreSQL: a session advisory lock; SQLite: a lock of this process). Errors: the
  // store's.
  virtual absl::StatusOr<std::unique_ptr<StoreLock>> TryLock(const std::string& name);

  // Where the store is: the file, or the URL without its password.
  const std::string& path() const { return path_; }
  // A random ID given to the store when it was created: a model records it beside the last seq
  // it trained on, so that a model is never matched against the seqs of another store.
  const std::string& id() const { return id_; }

 protected:
  EventStore() = default;
  std::string path_;
  std::string id_;
  std::atomic<int64_t> pending_writes_{0};  // handed over, not yet done (pending_writes())
};

}  // namespace recloop

#endif  // RECLOOP_DATA_EVENT_STORE_H_
