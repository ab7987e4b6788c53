// Feedback: the events storefronts POST to /v1/feedback, stored durably (data/event_store.h)
// and folded into the live model at once, so that a customer's next request reflects them.
//
// After a batch is durable, each of its users is folded in again from their whole history (the
// model's training interactions plus every stored event) with the engine's fold-in, against the
// live model's item factors; the folded vector is published in a user overlay that the
// recommendations route consults before the model's own user vectors. Overlay entries belong to
// one model version and are ignored by any other.
#ifndef RECLOOP_SERVING_FEEDBACK_H_
#define RECLOOP_SERVING_FEEDBACK_H_

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "data/event_interactions.h"
#include "data/event_store.h"
#include "serving/live_model.h"
#include "serving/metrics.h"

namespace recloop {

struct FeedbackOptions {
  // Weight of an event without a value, by type (the value of the implicit fold-in: confidence
  // 1 + alpha * |w|, preference [w > 0]). A negative weight is negative feedback: it pushes the
  // item and the items near it down. "rating" is the explicit type and must carry a value.
  // Types not listed here are refused.
  TypeWeights type_weights = DefaultTypeWeights();
  // Events one POST may carry.
  int max_events_per_request = 10'000;
};

// A POST /v1/feedback body, parsed: the events that are valid (with their index in the body)
// and the index and reason of each that is not.
struct ParsedFeedback {
  std::vector<Event> events;
  std::vector<int> indices;
  // Aligned with events: the list the event answers (serving/impression_log.h), or empty.
  std::vector<std::string> recommendation_ids;
  std::vector<std::pair<int, std::string>> rejected;
};

// Parses a JSON array of {"user","item","type","value"?,"timestamp"?,"id"?,
// "recommendation_id"?}; timestamp is ISO
// 8601 UTC or integer seconds, `now_seconds` where absent. Errors: InvalidArgument if the body
// is not a JSON array or holds more than max_events_per_request events (nothing is stored then).
absl::StatusOr<ParsedFeedback> ParseFeedbackBody(std::string_view body,
                                                 const FeedbackOptions& options,
                                                 int64_t now_seconds);

// A user folded in from fresh feedback, for one model version. Immutable.
struct FoldedUserEntry {
  std::string model_version;
  int64_t through_seq = 0;     // the last stored event the fold saw
  std::vector<float> factors;  // empty: cold (popular items)
  float bias = 0.0f;
  std::vector<int32_t> seen;  // the model's item indices the user interacted with
  // The history the fold solved over (engine/fold_in.h FoldHistory, in item order), kept for
  // explanations (explain=true): 8 bytes per entry.
  std::vector<int32_t> history_items;
  std::vector<float> history_values;
  // The user was erased: the model's training interactions of the user no longer count.
  bool erased = false;
  // This entry's own number (serving/live_model.h NextServingSerial), which a cached ranking of
  // the user records (serving/ranked_cache.h).
  uint64_t serial = NextServingSerial();
};

// A user holds entries for at most two model versions at once: while a new version is being
// swapped in, its entries are prepared beside the live version's (serving/model_swapper.h).
// Folds are published here by serving/feedback_folder.h, which owns the overlay and the locks
// that order folds against erasures and extensions.
//
// Thread safety: every method may be called concurrently. A lookup copies one shared pointer
// under the mutex of one of 16 shards; it never waits on a fold.
class UserOverlay {
 public:
  // The user's entry for `model_version`, or null.
  std::shared_ptr<const FoldedUserEntry> Find(const std::string& user,
                                              const std::string& model_version) const;
  // Stores `entry` unless the user already has one for the same model version that saw a later
  // event (two folds of one user racing: the one that saw more wins). An entry of a third
  // version replaces the user's older one.
  void Put(const std::string& user, std::shared_ptr<const FoldedUserEntry> entry);
  void Erase(const std::string& user);
  // Drops every entry of a version other than `model_version` (after a swap).
  void KeepOnly(const std::string& model_version);
  int64_t size() const;  // entries

 private:
  using Entries = std::vector<std::shared_ptr<const FoldedUserEntry>>;  // oldest first, <= 2
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Entries> users ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(const std::string& user) const;
  mutable std::array<Shard, 16> shards_;
};

// Folds `user` in against `snap` from the model's training row (if the model knows the user and
// `erased` is false) and `events`: the user's stored events after `through_seq`, the model's last
// trained event of this store (EventsThroughSeq; older ones are in the training row already),
// in log order. Events
// count as in training (data/event_interactions.h): explicit models take "rating" events (the
// latest per item wins), implicit models add up each item's event weights. Items the model does
// not know are skipped. Pass erased = true if the user was erased after the model's last event
// (EventStore::ErasedAt): their training row then no longer counts. `previous` (may be null) is
// the user's current entry: its vector, if of snap's version, warm-starts a CG fold
// (engine/fold_in.h), else the user's trained row does. Errors: FailedPrecondition for a model
// without factors.
absl::StatusOr<std::shared_ptr<const FoldedUserEntry>> FoldUser(
    const ModelSnapshot& snap, const std::string& user, const std::vector<StoredEvent>& events,
    const FeedbackOptions& options, int64_t through_seq, bool erased = false,
    const FoldedUserEntry* previous = nullptr);

}  // namespace recloop

#endif  // RECLOOP_SERVING_FEEDBACK_H_
