// RankedCache: each recently served user's ranked candidates (issue 21), so that the next request
// of the same user is answered without searching the index.
//
// Exact, not "fresh enough": an entry records the serials of the model and index
// (ModelSnapshot::ranking_serial, serving/live_model.h) and of the user's fold-in entry
// (serving/feedback.h) it was ranked from, and is used only while both are still the ones a
// request would rank from. A feedback event folds the user in again (a new overlay entry, a new
// serial); a model swap or an extension publishes a new ranking serial: every such change makes
// the entries it affects unusable at once, without a pass over the cache. An extension only adds
// items, so an entry ranked before it is carried forward when it is next used (CarryForward: one
// dot product per new item) unless a new item would enter it; a store that adds items steadily
// then does not send every customer back to a search. A catalogue change keeps the ranking
// serial: the catalogue filters a cached list when it is used.
//
// An entry holds the top `candidates` items of the user's request without its filters (seen
// items dropped; unavailable ones kept, no category, no exclude, no offset), best first. A
// request walks that list through the live catalogue's availability and its own filters and
// offset; when fewer than offset + n items qualify and the list was cut at `candidates`, the
// request searches instead (and does not replace the entry). Filtering a ranked list keeps its
// order, so the answer is the one the search would give (with an HNSW index, the search's own
// approximation: the cached list comes from a search for `candidates` items, which recalls at
// least as well as one for n).
//
// Memory: per user, 12 bytes a candidate plus about 150 bytes of key, entry and LRU bookkeeping
// (memory_bytes() counts them); bounded by max_users, least recently used first out.
#ifndef RECLOOP_SERVING_RANKED_CACHE_H_
#define RECLOOP_SERVING_RANKED_CACHE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "engine/recommender.h"
#include "serving/feedback.h"
#include "serving/live_model.h"

namespace recloop {

struct RankedCacheOptions {
  // Candidates kept per user; 0 turns the cache off. Enough for the common page (n 10, a short
  // exclude list, a category holding a fair share of the catalogue); a request that needs more
  // searches.
  int candidates = 64;
  // Users kept at most; the least recently used go first. 500K users of 64 candidates take
  // about 470 MB (measured: 930 bytes a user).
  int64_t max_users = 500'000;
};

// One user's ranked candidates, immutable once cached.
struct RankedList {
  uint64_t ranking_serial = 0;  // ModelSnapshot::ranking_serial it was ranked from
  uint64_t fold_serial = 0;     // FoldedUserEntry::serial it was ranked from; 0: no entry
  // Fewer than `candidates` items qualified: `items` holds every qualifying one.
  bool complete = false;
  std::vector<Recommendation> items;  // best first
};

// Thread safety: every method may be called from any number of threads at once (16 shards,
// each a mutex held for a lookup or an insertion only).
class RankedCache {
 public:
  explicit RankedCache(RankedCacheOptions options);

  bool enabled() const { return options_.candidates > 0 && options_.max_users > 0; }
  int candidates() const { return options_.candidates; }
  int64_t max_users() const { return options_.max_users; }

  // Brings a list ranked under an earlier ranking serial forward to the current one, or returns
  // null if it no longer holds (CarryForward, for the snapshot being ranked against).
  using Carry = absl::FunctionRef<std::shared_ptr<const RankedList>(const RankedList&)>;

  // The user's list if it was ranked from exactly these serials, else null (a miss; a stale
  // entry is dropped). With `carry`, an entry of the same fold serial ranked under another
  // ranking serial is offered to it first: what it returns replaces the entry and is a hit.
  std::shared_ptr<const RankedList> Find(std::string_view user, uint64_t ranking_serial,
                                         uint64_t fold_serial,
                                         std::optional<Carry> carry = std::nullopt);
  // Whether Find would hit (carrying the entry forward as Find does), without counting a hit or
  // a miss or touching the LRU order (for the background warmer).
  bool Holds(std::string_view user, uint64_t ranking_serial, uint64_t fold_serial,
             std::optional<Carry> carry = std::nullopt);
  // The user's entry whatever its serials, or null, without counting or touching the LRU order.
  std::shared_ptr<const RankedList> Peek(std::string_view user);
  // Stores `list` as the user's (replacing any), evicting the least recently used user of its
  // shard past the bound.
  void Put(std::string_view user, std::shared_ptr<const RankedList> list);
  // Stores `list` only if that evicts no usable entry (the user's shard has room, holds the user
  // already, or its least recently used entry was ranked from another model: stale, so it goes);
  // returns whether it stored it. For the warmer, which must not push out the users that
  // requests brought in (nor its own earlier, more active, users).
  bool PutIfRoom(std::string_view user, std::shared_ptr<const RankedList> list);
  // Whether PutIfRoom(user, a list of `ranking_serial`) would store now.
  bool HasRoom(std::string_view user, uint64_t ranking_serial);

  int64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  int64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  int64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  int64_t users() const { return users_.load(std::memory_order_relaxed); }
  // Bytes held by the entries: candidates, keys and bookkeeping (an estimate of the allocator's
  // share, from the sizes of what is stored).
  int64_t memory_bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Users a background warmer (serving/cache_warmer.h) has still to rank, for /metrics.
  void SetWarmPending(int64_t users) { warm_pending_.store(users, std::memory_order_relaxed); }
  int64_t warm_pending() const { return warm_pending_.load(std::memory_order_relaxed); }
  // A warmer finished a pass over a model (for /metrics: a client waiting for warm knows when).
  void CountWarmPass() { warm_passes_.fetch_add(1, std::memory_order_relaxed); }
  int64_t warm_passes() const { return warm_passes_.load(std::memory_order_relaxed); }
  // Prometheus text of the counters above, appended to /metrics.
  std::string RenderMetrics() const;

 private:
  struct Node;
  using Lru = std::list<Node>;
  struct Node {
    std::string user;
    std::shared_ptr<const RankedList> list;
  };
  struct Shard {
    std::mutex mu;
    Lru lru ABSL_GUARDED_BY(mu);  // most recently used first
    absl::flat_hash_map<std::string_view, Lru::iterator> index ABSL_GUARDED_BY(mu);
  };
  Shard& ShardOf(std::string_view user);
  static int64_t BytesOf(const Node& node);
  // Adds `user` (not in the shard) as its most recently used entry, with the accounting.
  void InsertLocked(Shard& shard, std::string_view user, std::shared_ptr<const RankedList> list)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  void EraseLocked(Shard& shard, Lru::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);
  // Whether `it` (the user's entry) is usable for these serials, carrying it forward if it
  // can; an unusable entry is erased.
  bool UsableLocked(Shard& shard, Lru::iterator it, uint64_t ranking_serial, uint64_t fold_serial,
                    const std::optional<Carry>& carry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const RankedCacheOptions options_;
  const int64_t max_users_per_shard_;
  std::array<Shard, 16> shards_;
  std::atomic<int64_t> hits_{0}, misses_{0}, evictions_{0}, users_{0}, bytes_{0};
  std::atomic<int64_t> warm_pending_{0}, warm_passes_{0};
};

// Ranks `user` for the cache against `snap`: the top `candidates` items of their request without
// filters (seen items dropped; search settings such as ef_search from `request`), from their
// folded vector when `folded` is given, else from the model's row `known`. Errors: the
// recommender's.
absl::StatusOr<std::shared_ptr<const RankedList>> RankForCache(const ModelSnapshot& snap,
                                                               std::optional<int32_t> known,
                                                               const FoldedUserEntry* folded,
                                                               const RecommendOptions& request,
                                                               int candidates);

// `list`, ranked under one of snap.extends' serials, brought forward to snap: a copy under
// snap's ranking serial when none of the items added since it was ranked would enter it for
// this user (their vector `factors`, their seen items `seen`, sorted), else null. The list holds
// its items' scores; a new item enters it if it scores at least the last one, or at all if the
// list is complete. For factor models scored by x·q alone (implicit ALS and BPMF, no item
// biases); null for others, and for a serial not in snap.extends. Cost: one dot product per new
// item. With an HNSW index the list keeps the earlier search's approximation.
std::shared_ptr<const RankedList> CarryForward(const ModelSnapshot& snap, const RankedList& list,
                                               std::span<const float> factors,
                                               std::span<const int32_t> seen);

// RankedCache::Find for `user` against `snap`, carrying an entry ranked under a serial that snap
// extends forward when it still holds (CarryForward, from the user's folded vector, else from
// their model row `known`). HoldsRanked: the same with RankedCache::Holds, for the warmer.
std::shared_ptr<const RankedList> FindRanked(RankedCache* cache, const ModelSnapshot& snap,
                                             const std::string& user, std::optional<int32_t> known,
                                             const FoldedUserEntry* folded);
bool HoldsRanked(RankedCache* cache, const ModelSnapshot& snap, const std::string& user,
                 std::optional<int32_t> known, const FoldedUserEntry* folded);

// The user's list for `options`, as Recommender::Recommend/RecommendForVector would answer it:
// from their cached ranking when it is still exact and long enough, else from a search (which,
// for a user the model or the overlay knows, ranks their candidates once and caches them). An
// unknown user without an overlay entry (a new customer: popular items) is never cached: cheap,
// and every unknown ID would take a slot. `cache` may be null or disabled (always searches).
absl::StatusOr<std::vector<Recommendation>> RankUser(RankedCache* cache, const ModelSnapshot& snap,
                                                     const std::string& user,
                                                     const FoldedUserEntry* folded,
                                                     const RecommendOptions& options);

// The answer to a request with `options` (n, offset, exclude, categories, exclude_unavailable;
// seen items are already out of `list`) from `list` through `catalog` (the live snapshot's; null:
// every item available, and a category filter is left to the search), or nullopt when the list
// is too short to know it.
std::optional<std::vector<Recommendation>> AnswerFromRankedList(const RankedList& list,
                                                                const RecommendOptions& options,
                                                                const ItemCatalog* catalog);

}  // namespace recloop

#endif  // RECLOOP_SERVING_RANKED_CACHE_H_
