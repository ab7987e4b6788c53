#include "serving/ranked_cache.h"

#include <algorithm>
#include <functional>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace recloop {

RankedCache::RankedCache(RankedCacheOptions options)
    : options_(options),
      max_users_per_shard_(
          std::max<int64_t>(1, (options.max_users + static_cast<int64_t>(shards_.size()) - 1) /
                                   static_cast<int64_t>(shards_.size()))) {}

RankedCache::Shard& RankedCache::ShardOf(std::string_view user) {
  return shards_[absl::HashOf(user) % shards_.size()];
}

int64_t RankedCache::BytesOf(const Node& node) {
  // The list node (two links and the Node), the index slot (key view + iterator, at a load of
  // about 7/8), the key's heap buffer beyond the small-string capacity, the shared RankedList
  // with its control block, and the candidates.
  constexpr int64_t kFixed = 2 * sizeof(void*) + sizeof(Node) +
                             (sizeof(std::string_view) + sizeof(Lru::iterator)) * 8 / 7 +
                             sizeof(RankedList) + 2 * sizeof(void*) + sizeof(int64_t);
  const int64_t key_heap = node.user.capacity() > 15 ? node.user.capacity() + 1 : 0;
  const int64_t items =
      node.list == nullptr
          ? 0
          : static_cast<int64_t>(node.list->items.capacity() * sizeof(Recommendation));
  return kFixed + key_heap + items;
}

void RankedCache::InsertLocked(Shard& shard, std::string_view user,
                               std::shared_ptr<const RankedList> list) {
  shard.lru.push_front(Node{std::string(user), std::move(list)});
  const Lru::iterator it = shard.lru.begin();
  shard.index.emplace(std::string_view(it->user), it);
  bytes_.fetch_add(BytesOf(*it), std::memory_order_relaxed);
  users_.fetch_add(1, std::memory_order_relaxed);
}

void RankedCache::EraseLocked(Shard& shard, Lru::iterator it) {
  bytes_.fetch_sub(BytesOf(*it), std::memory_order_relaxed);
  users_.fetch_sub(1, std::memory_order_relaxed);
  shard.index.erase(std::string_view(it->user));
  shard.lru.erase(it);
}

bool RankedCache::UsableLocked(Shard& shard, Lru::iterator it, uint64_t ranking_serial,
                               uint64_t fold_serial, const std::optional<Carry>& carry) {
  const RankedList& list = *it->list;
  if (list.ranking_serial == ranking_serial && list.fold_serial == fold_serial) return true;
  if (carry.has_value() && list.fold_serial == fold_serial) {
    if (auto carried = (*carry)(list); carried != nullptr) {
      it->list = std::move(carried);  // the same items: the accounted bytes stay
      return true;
    }
  }
  // Ranked from a model or a fold that is gone: never usable again.
  EraseLocked(shard, it);
  return false;
}

std::shared_ptr<const RankedList> RankedCache::Find(std::string_view user, uint64_t ranking_serial,
                                                    uint64_t fold_serial,
                                                    std::optional<Carry> carry) {
  if (!enabled()) return nullptr;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  const auto found = shard.index.find(user);
  if (found == shard.index.end() ||
      !UsableLocked(shard, found->second, ranking_serial, fold_serial, carry)) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  const Lru::iterator it = found->second;
  shard.lru.splice(shard.lru.begin(), shard.lru, it);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->list;
}

bool RankedCache::Holds(std::string_view user, uint64_t ranking_serial, uint64_t fold_serial,
                        std::optional<Carry> carry) {
  if (!enabled()) return false;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  const auto found = shard.index.find(user);
  return found != shard.index.end() &&
         UsableLocked(shard, found->second, ranking_serial, fold_serial, carry);
}

std::shared_ptr<const RankedList> RankedCache::Peek(std::string_view user) {
  if (!enabled()) return nullptr;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  const auto found = shard.index.find(user);
  return found != shard.index.end() ? found->second->list : nullptr;
}

void RankedCache::Put(std::string_view user, std::shared_ptr<const RankedList> list) {
  if (!enabled() || list == nullptr) return;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (const auto found = shard.index.find(user); found != shard.index.end()) {
    EraseLocked(shard, found->second);
  }
  InsertLocked(shard, user, std::move(list));
  while (static_cast<int64_t>(shard.lru.size()) > max_users_per_shard_) {
    EraseLocked(shard, std::prev(shard.lru.end()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool RankedCache::HasRoom(std::string_view user, uint64_t ranking_serial) {
  if (!enabled()) return false;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  return static_cast<int64_t>(shard.lru.size()) < max_users_per_shard_ ||
         shard.index.contains(user) || shard.lru.back().list->ranking_serial != ranking_serial;
}

bool RankedCache::PutIfRoom(std::string_view user, std::shared_ptr<const RankedList> list) {
  if (!enabled() || list == nullptr) return false;
  Shard& shard = ShardOf(user);
  std::lock_guard<std::mutex> lock(shard.mu);
  if (const auto found = shard.index.find(user); found != shard.index.end()) {
    EraseLocked(shard, found->second);
  } else if (static_cast<int64_t>(shard.lru.size()) >= max_users_per_shard_) {
    if (shard.lru.back().list->ranking_serial == list->ranking_serial) return false;
    EraseLocked(shard, std::prev(shard.lru.end()));  // stale: never usable again
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
  InsertLocked(shard, user, std::move(list));
  return true;
}

std::string RankedCache::RenderMetrics() const {
  return absl::StrCat(
      "# HELP recloop_ranked_cache_hits_total List requests answered from a cached ranking\n"
      "# TYPE recloop_ranked_cache_hits_total counter\n"
      "recloop_ranked_cache_hits_total ",
      hits(), "\n",
      "# HELP recloop_ranked_cache_misses_total List requests that found no usable cached ranking\n"
      "# TYPE recloop_ranked_cache_misses_total counter\n"
      "recloop_ranked_cache_misses_total ",
      misses(), "\n",
      "# HELP recloop_ranked_cache_evictions_total Cached rankings evicted by the size bound\n"
      "# TYPE recloop_ranked_cache_evictions_total counter\n"
      "recloop_ranked_cache_evictions_total ",
      evictions(), "\n",
      "# HELP recloop_ranked_cache_users Users with a cached ranking\n"
      "# TYPE recloop_ranked_cache_users gauge\n"
      "recloop_ranked_cache_users ",
      users(), "\n",
      "# HELP recloop_ranked_cache_bytes Memory held by the cached rankings\n"
      "# TYPE recloop_ranked_cache_bytes gauge\n"
      "recloop_ranked_cache_bytes ",
      memory_bytes(), "\n",
      "# HELP recloop_ranked_cache_warm_pending Users the background warmer has still to rank\n"
      "# TYPE recloop_ranked_cache_warm_pending gauge\n"
      "recloop_ranked_cache_warm_pending ",
      warm_pending(), "\n",
      "# HELP recloop_ranked_cache_warm_passes_total Warming passes finished (one per model)\n"
      "# TYPE recloop_ranked_cache_warm_passes_total counter\n"
      "recloop_ranked_cache_warm_passes_total ",
      warm_passes(), "\n");
}

std::optional<std::vector<Recommendation>> AnswerFromRankedList(const RankedList& list,
                                                                const RecommendOptions& options,
                                                                const ItemCatalog* catalog) {
  if (options.n < 0 || options.offset < 0) return std::nullopt;  // the search's error
  std::vector<int32_t> categories = options.categories;
  if (!categories.empty()) {
    if (catalog == nullptr) return std::nullopt;  // the search's error
    std::sort(categories.begin(), categories.end());
  }
  const auto excluded = [&options](int32_t item) {
    return std::find(options.exclude.begin(), options.exclude.end(), item) != options.exclude.end();
  };
  std::vector<Recommendation> out;
  out.reserve(static_cast<size_t>(options.n));
  int skipped = 0;
  for (const Recommendation& r : list.items) {
    if (static_cast<int>(out.size()) == options.n) break;
    if (!options.exclude.empty() && excluded(r.item)) continue;
    if (options.exclude_unavailable && catalog != nullptr && !catalog->IsAvailable(r.item)) {
      continue;
    }
    if (!categories.empty() && !catalog->InAnyCategory(r.item, categories)) continue;
    if (skipped < options.offset) {
      ++skipped;
      continue;
    }
    out.push_back(r);
  }
  if (static_cast<int>(out.size()) < options.n && !list.complete) return std::nullopt;
  return out;
}

}  // namespace recloop

namespace recloop {

namespace {

absl::StatusOr<std::vector<Recommendation>> Search(const ModelSnapshot& snap,
                                                   std::optional<int32_t> known,
                                                   const FoldedUserEntry* folded,
                                                   const RecommendOptions& options) {
  if (folded != nullptr) {
    return snap.recommender->RecommendForVector(folded->factors, folded->bias, folded->seen,
                                                options);
  }
  return snap.recommender->Recommend(known.value_or(-1), options);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RankedList>> RankForCache(const ModelSnapshot& snap,
                                                               std::optional<int32_t> known,
                                                               const FoldedUserEntry* folded,
                                                               const RecommendOptions& request,
                                                               int candidates) {
  RecommendOptions all;
  all.n = candidates;
  all.ef_search = request.ef_search;
  all.exclude_seen = request.exclude_seen;
  all.exclude_unavailable = false;  // the catalogue filters the list when it is used
  auto ranked = Search(snap, known, folded, all);
  if (!ranked.ok()) return ranked.status();
  auto list = std::make_shared<RankedList>();
  list->ranking_serial = snap.ranking_serial;
  list->fold_serial = folded != nullptr ? folded->serial : 0;
  list->complete = static_cast<int>(ranked->size()) < candidates;
  list->items = *std::move(ranked);
  return list;
}

std::shared_ptr<const RankedList> CarryForward(const ModelSnapshot& snap, const RankedList& list,
                                               std::span<const float> factors,
                                               std::span<const int32_t> seen) {
  const FactorModel& m = *snap.model;
  const auto earlier = std::find_if(
      snap.extends.begin(), snap.extends.end(),
      [&list](const ModelSnapshot::EarlierRanking& e) { return e.serial == list.ranking_serial; });
  if (earlier == snap.extends.end() || !m.has_factors() || m.item_bias.size() != 0 ||
      m.params.algorithm == Algorithm::kEase ||
      static_cast<int64_t>(factors.size()) != m.item_factors.cols()) {
    return nullptr;
  }
  const Eigen::Map<const Eigen::VectorXf> x(factors.data(), static_cast<int64_t>(factors.size()));
  for (int32_t i = earlier->items; i < m.num_items(); ++i) {
    if (std::binary_search(seen.begin(), seen.end(), i)) continue;  // never in the list
    if (list.complete || list.items.empty() ||
        m.item_factors.row(i).dot(x) >= list.items.back().score) {
      return nullptr;
    }
  }
  auto carried = std::make_shared<RankedList>(list);
  carried->ranking_serial = snap.ranking_serial;
  return carried;
}

namespace {

// RankedCache::Find's carry for `user` against `snap` (their folded vector, else their row).
std::shared_ptr<const RankedList> CarryUser(const ModelSnapshot& snap, std::optional<int32_t> known,
                                            const FoldedUserEntry* folded, const RankedList& list) {
  if (folded != nullptr) return CarryForward(snap, list, folded->factors, folded->seen);
  const FactorMatrix& users = snap.model->user_factors;
  if (!known || *known >= users.rows()) return nullptr;
  return CarryForward(snap, list, std::span<const float>(users.row(*known).data(), users.cols()),
                      {});
}

}  // namespace

std::shared_ptr<const RankedList> FindRanked(RankedCache* cache, const ModelSnapshot& snap,
                                             const std::string& user, std::optional<int32_t> known,
                                             const FoldedUserEntry* folded) {
  const auto carry = [&](const RankedList& list) { return CarryUser(snap, known, folded, list); };
  return cache->Find(user, snap.ranking_serial, folded != nullptr ? folded->serial : 0, carry);
}

bool HoldsRanked(RankedCache* cache, const ModelSnapshot& snap, const std::string& user,
                 std::optional<int32_t> known, const FoldedUserEntry* folded) {
  const auto carry = [&](const RankedList& list) { return CarryUser(snap, known, folded, list); };
  return cache->Holds(user, snap.ranking_serial, folded != nullptr ? folded->serial : 0, carry);
}

absl::StatusOr<std::vector<Recommendation>> RankUser(RankedCache* cache, const ModelSnapshot& snap,
                                                     const std::string& user,
                                                     const FoldedUserEntry* folded,
                                                     const RecommendOptions& options) {
  const std::optional<int32_t> known = snap.model->users.Find(user);
  if (cache == nullptr || !cache->enabled() || (folded == nullptr && !known) ||
      !options.exclude_seen ||
      static_cast<int64_t>(options.offset) + options.n > cache->candidates()) {
    return Search(snap, known, folded, options);
  }
  std::shared_ptr<const RankedList> list = FindRanked(cache, snap, user, known, folded);
  if (list == nullptr) {
    auto ranked = RankForCache(snap, known, folded, options, cache->candidates());
    if (!ranked.ok()) return ranked.status();
    list = *std::move(ranked);
    cache->Put(user, list);
  }
  if (auto answer = AnswerFromRankedList(*list, options, snap.catalog.get())) {
    return *std::move(answer);
  }
  return Search(snap, known, folded, options);
}

}  // namespace recloop
