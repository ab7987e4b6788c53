// ImpressionLog: what customers were shown, and which of their events each list earned.
//
// Every list response (recommendations, similar items, popular items) carries a
// `recommendation_id`; Record() keeps the impression in memory for attribution and queues it
// for the event store (data/event_store.h AppendImpressions), which a background thread writes
// in batches: the request path takes one mutex and does no I/O. A sampling rate thins what is
// stored (never what is attributed); what is sampled out, or dropped because the write queue is
// full, is counted on /metrics. Impressions are a log, not acknowledged data: a crash loses the
// last batch (at most `flush_interval` of them).
//
// Attribution (Attribute): a click, cart or purchase is credited to the impression named by
// its event's `recommendation_id` when that list held the item; an event without one goes to
// the customer's latest impression within `attribution_window` that held the item. Each
// (impression, item, type) is credited once, so a retried batch never counts twice. Credits are
// counted per model version and variant, and per position, and stored beside the impressions.
//
// Thread safety: every public method may be called from any thread.
#ifndef RECLOOP_SERVING_IMPRESSION_LOG_H_
#define RECLOOP_SERVING_IMPRESSION_LOG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "base/logger.h"
#include "data/event_store.h"

namespace recloop {

struct ImpressionLogOptions {
  // False: lists still carry a recommendation_id, but nothing is kept, stored or attributed.
  bool record = true;
  // Fraction of impressions stored in the event store (0..1); the rest are counted as sampled
  // out. Attribution sees every impression either way.
  double sample_rate = 1.0;
  // Impressions (and attributions) waiting to be written, at most; more are dropped and counted.
  int64_t max_queue = 100'000;
  // How often the writer thread stores what waits.
  std::chrono::milliseconds flush_interval{200};
  // How long after an impression an event without a recommendation_id may still be credited to
  // it.
  std::chrono::milliseconds attribution_window{std::chrono::hours(24)};
  // Impressions kept in memory for attribution (the oldest go first; about 1 KB each for a list
  // of 10), and per customer. At a high rate this, not attribution_window, bounds how far back
  // an event without a recommendation_id is credited.
  int64_t max_recent = 200'000;
  int max_recent_per_user = 16;
};

// One list as served: its items in position order with their sources.
struct ServedList {
  std::string user;   // empty when the list has no customer
  std::string route;  // "recommendations", "similar" or "popular"
  std::string model_version;
  std::string variant;                                     // empty outside an experiment
  std::vector<std::pair<std::string, std::string>> items;  // (item, source)
};

class ImpressionLog {
 public:
  using Clock = std::chrono::system_clock;
  // `store` may be null: impressions are then attributed but not stored. Starts the writer
  // thread when there is a store.
  ImpressionLog(EventStore* store, ImpressionLogOptions options, Logger* log = StderrLog());
  ~ImpressionLog();  // writes what waits
  ImpressionLog(const ImpressionLog&) = delete;
  ImpressionLog& operator=(const ImpressionLog&) = delete;

  // A fresh recommendation_id: 32 hex digits from a per-thread random generator.
  static std::string NewId();

  // Keeps `list`, served at `at` under `id`, for attribution and (sampled) storage.
  void Record(const std::string& id, ServedList list, Clock::time_point at = Clock::now());

  // Credits an acknowledged event. `recommendation_id` may be empty. Returns the position
  // (1-based) it was credited at, or nullopt when it was not (a type that is not credited,
  // no matching impression, or credited already).
  std::optional<int> Attribute(const std::string& user, const std::string& item,
                               const std::string& type, const std::string& recommendation_id,
                               Clock::time_point at = Clock::now());

  // The event types credited: click, cart, purchase.
  static bool Credited(std::string_view type);

  // /metrics text: impressions served per version and variant; stored, sampled out and
  // dropped; credited events per version, variant and type, and per position and type;
  // events that named an unknown or non-matching recommendation_id.
  std::string MetricsText() const;

  // Lists served and events credited per variant (every model version together), for the
  // experiment report (GET /v1/admin/experiments).
  struct VariantCounts {
    int64_t impressions = 0;
    std::map<std::string, int64_t> credited;  // by event type
  };
  std::map<std::string, VariantCounts> CountsByVariant() const;

  // Writes what waits now (tests; the destructor).
  void Flush();

 private:
  struct Recent {
    std::string id;
    ServedList list;
    Clock::time_point at;
    absl::flat_hash_set<std::string> credited;  // "item\ttype", guarded by mu_
  };
  std::optional<int> CreditLocked(Recent& r, const std::string& item, const std::string& type,
                                  Clock::time_point at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriterLoop();

  EventStore* store_;
  const ImpressionLogOptions options_;
  Logger* log_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Keyed by a view of the entry's own id (an entry never changes once recorded).
  absl::flat_hash_map<std::string_view, std::shared_ptr<Recent>> by_id_ ABSL_GUARDED_BY(mu_);
  // A customer's latest lists, oldest first (at most max_recent_per_user).
  absl::flat_hash_map<std::string, absl::InlinedVector<std::shared_ptr<Recent>, 2>> by_user_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Recent>> order_ ABSL_GUARDED_BY(mu_);  // oldest first
  // Waiting to be written; turned into rows (the items as JSON) on the writer thread.
  std::vector<std::shared_ptr<const Recent>> pending_ ABSL_GUARDED_BY(mu_);
  std::vector<AttributionRecord> pending_attributions_ ABSL_GUARDED_BY(mu_);

  // Counters for /metrics.
  std::map<std::pair<std::string, std::string>, int64_t> served_ ABSL_GUARDED_BY(mu_);
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> credited_
      ABSL_GUARDED_BY(mu_);
  std::map<std::pair<int, std::string>, int64_t> by_position_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> unmatched_ ABSL_GUARDED_BY(mu_);
  int64_t stored_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sampled_out_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t write_errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::mutex flush_mu_;  // one write at a time (the writer thread and Flush)
  std::thread writer_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_IMPRESSION_LOG_H_
