// Recommender: answers "top n items for this user" and "n items most like this one" from a
// factor model and its ItemIndex, applying per-request filters (already-seen items, items
// marked unavailable, allowed categories, an extra exclusion list) while still returning exactly
// n items whenever n items qualify. Unknown or cold users get the most popular items.
#ifndef RECLOOP_ENGINE_RECOMMENDER_H_
#define RECLOOP_ENGINE_RECOMMENDER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/item_index.h"

namespace recloop {

// What the store knows about its items beyond the model: whether each may be recommended now,
// and which categories it belongs to. Plain data, read-only while queries run (build a new one
// and swap it with the model snapshot to change it); concurrent const use is safe.
struct ItemCatalog {
  // available[i] != 0 if item i may be recommended. Empty: every item is available.
  std::vector<uint8_t> available;
  // Categories of item i: category_ids[category_indptr[i] .. category_indptr[i + 1]), any
  // order. Category ids are the caller's (e.g. indices into its own IdMap of category names).
  // Empty indptr: no item has a category (any category filter then matches nothing).
  std::vector<int64_t> category_indptr;
  std::vector<int32_t> category_ids;

  // Checks the shapes against a catalogue of num_items items. Errors: InvalidArgument naming
  // the inconsistent field.
  absl::Status Validate(int32_t num_items) const;

  bool IsAvailable(int32_t item) const { return available.empty() || available[item] != 0; }
  // True if the item has at least one of `categories` (sorted ascending).
  bool InAnyCategory(int32_t item, std::span<const int32_t> categories) const;
};

// Per-request filters and sizes.
struct RecommendOptions {
  // Number of results wanted. Must be >= 0.
  int n = 10;
  // Results skip the `offset` best qualifying items (paging). Must be >= 0.
  int offset = 0;
  // Drop items the user interacted with in training (the model's `seen` row for a known user;
  // the `seen` argument for a vector query).
  bool exclude_seen = true;
  // Drop items the catalogue marks unavailable (no effect without a catalogue).
  bool exclude_unavailable = true;
  // If not empty, keep only items in at least one of these categories (needs a catalogue).
  std::vector<int32_t> categories;
  // Further items never to return (any order, duplicates allowed).
  std::vector<int32_t> exclude;
  // HNSW beam width for this query (recall against latency); 0 = the index's default. Must be
  // >= 0; no effect on an exact index.
  int ef_search = 0;
};

enum class RecommendationSource {
  kPersonalized,  // ranked by the user's factors
  kPopular,       // unknown or cold user: ranked by training popularity
  kSimilar,       // ranked by cosine similarity to an item
};
// "personalized", "popular", "similar" (the JSON spelling).
std::string_view ToString(RecommendationSource s);

struct Recommendation {
  int32_t item;
  // kPersonalized: the predicted rating (explicit models: mu + b_u + p_u.q_i + b_i, clamped to
  // the training range) or the ranking score p_u.q_i (implicit); kPopular: the item's training
  // interaction count; kSimilar: cosine similarity.
  float score;
  RecommendationSource source;
};

// Thread safety: immutable after Create; concurrent const calls are safe (each query uses only
// its own scratch memory and the index's thread-safe search with one OpenMP thread).
class Recommender {
 public:
  // `index` may be null: then every user query is answered by brute-force scoring (exact) and
  // Similar by brute-force cosine. `catalog` may be null (all items available, no categories).
  // A popularity-only model (no factors) answers every query with popular items.
  // Errors: InvalidArgument if the index or catalogue does not match the model's items/factors.
  static absl::StatusOr<Recommender> Create(std::shared_ptr<const FactorModel> model,
                                            std::shared_ptr<const ItemIndex> index,
                                            std::shared_ptr<const ItemCatalog> catalog = nullptr);

  // Top items for model user `user`. A user index outside [0, num_users) (e.g. -1 for an
  // unknown user), a user with no training interactions, or a model without factors gives the
  // most popular qualifying items, with source kPopular. Returns exactly options.n items when
  // at least offset + n items qualify, else all qualifying items past the offset, best first.
  // Errors: InvalidArgument for a negative n/offset or an out-of-range item in `exclude` /
  // category filter without catalogue; Internal if the index fails.
  absl::StatusOr<std::vector<Recommendation>> Recommend(int32_t user,
                                                        const RecommendOptions& options) const;

  // Top items for a user given by a factor vector (e.g. folded in from fresh interactions):
  // `factors` has model.factors() entries, `user_bias` is b_u (0 for implicit models), `seen`
  // the user's items (any order) excluded when options.exclude_seen. An empty `factors` gives
  // popular items. Errors as Recommend, plus InvalidArgument on a wrong vector size.
  absl::StatusOr<std::vector<Recommendation>> RecommendForVector(
      std::span<const float> factors, float user_bias, std::span<const int32_t> seen,
      const RecommendOptions& options) const;

  // The items most similar to `item` by cosine of their factor vectors, never `item` itself.
  // options.exclude_seen is ignored (there is no user). Errors: InvalidArgument if `item` is out
  // of range or the model has no factors; otherwise as Recommend.
  absl::StatusOr<std::vector<Recommendation>> Similar(int32_t item,
                                                      const RecommendOptions& options) const;

  const FactorModel& model() const { return *model_; }

 private:
  struct Filter;
  Recommender() = default;

  absl::StatusOr<std::vector<Recommendation>> Personalized(std::span<const float> query,
                                                           float offset_score,
                                                           const Filter& filter, int need) const;
  std::vector<Recommendation> Popular(const Filter& filter, int need) const;
  absl::StatusOr<std::vector<Recommendation>> Cosine(int32_t item, const Filter& filter,
                                                     int need) const;
  absl::StatusOr<Filter> MakeFilter(const RecommendOptions& options,
                                    std::span<const int32_t> seen) const;
  // The HNSW beam a search with `filter` runs with (0 for an exact index), and its parameters.
  int Beam(const Filter& filter) const;
  static ItemSearchParams SearchParams(const Filter& filter);

  std::shared_ptr<const FactorModel> model_;
  std::shared_ptr<const ItemIndex> index_;
  std::shared_ptr<const ItemCatalog> catalog_;
  // Items by descending popularity (ties to the lower index), for cold users.
  std::vector<int32_t> popular_order_;
  // L2-normalised item factors for brute-force cosine when there is no index.
  FactorMatrix normalized_items_;
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_RECOMMENDER_H_
