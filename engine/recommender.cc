#include "engine/recommender.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/top_k.h"

namespace recloop {
namespace {

// Over-fetching stops and brute force takes over once the index would be asked for more than
// this fraction of the catalogue: a filter that rejects most items makes index search pay for
// a huge k (and HNSW loses recall as its beam widens past the graph's reach), while one exact
// pass over all items costs the same as a flat search anyway.
constexpr int64_t kBruteForceDivisor = 4;
// Growth of k between over-fetch rounds when the filtered result is still short.
constexpr int64_t kGrowth = 4;

// Over-fetches from an index until `need` items pass `filter`: with only an exclusion list,
// k = need + |excluded| is guaranteed to hold need qualifying items, so one exact search
// suffices; availability and categories reject an unknown share, so k starts wider and grows.
// `search(k, scores, items)` runs one index search. Returns the results, or std::nullopt once k
// would reach the brute-force bound (the caller then scores every item exactly).
// `beam` is the HNSW index's default beam (0 for exact): its searches cost the same for any k up
// to the beam and grow with k beyond it, so the first search asks for no more than the beam
// (a user with many seen items usually still has `need` unseen ones among the beam's results)
// and only widens when the filter leaves too few.
template <typename FilterT, typename Search, typename Score>
absl::StatusOr<std::optional<std::vector<Recommendation>>> OverFetch(const FilterT& filter,
                                                                     int need, int64_t num_items,
                                                                     int beam, Search search,
                                                                     Score score,
                                                                     RecommendationSource source) {
  int64_t k = need + static_cast<int64_t>(filter.excluded.size());
  if (filter.open_ended()) k *= 2;
  if (beam > 0) k = std::max<int64_t>(need, std::min<int64_t>(k, beam));
  std::vector<float> scores;
  std::vector<int64_t> items;
  std::vector<Recommendation> out;
  while (k * kBruteForceDivisor <= num_items) {
    scores.resize(k);
    items.resize(k);
    if (absl::Status s = search(static_cast<int>(k), scores.data(), items.data()); !s.ok()) {
      return s;
    }
    out.clear();
    for (int64_t j = 0; j < k && static_cast<int>(out.size()) < need; ++j) {
      if (items[j] < 0) break;
      const auto item = static_cast<int32_t>(items[j]);
      if (filter.Passes(item)) out.push_back({item, score(scores[j]), source});
    }
    if (static_cast<int>(out.size()) >= need) return out;
    k *= kGrowth;
  }
  return std::nullopt;
}

// The exact top `need` of `s` (one score per item) among the items that pass `filter`.
template <typename FilterT, typename Score>
std::vector<Recommendation> TopFiltered(Eigen::VectorXf s, const FilterT& filter, int need,
                                        Score score, RecommendationSource source) {
  for (int64_t i = 0; i < s.size(); ++i) {
    if (!filter.Passes(static_cast<int32_t>(i))) {
      s[i] = std::numeric_limits<float>::quiet_NaN();  // TopK skips NaN
    }
  }
  std::vector<Recommendation> out;
  for (const ScoredItem& t : TopK(std::span<const float>(s.data(), s.size()), need)) {
    out.push_back({t.item, score(t.score), source});
  }
  return out;
}

}  // namespace

std::string_view ToString(RecommendationSource s) {
  switch (s) {
    case RecommendationSource::kPersonalized:
      return "personalized";
    case RecommendationSource::kPopular:
      return "popular";
    case RecommendationSource::kSimilar:
      return "similar";
  }
  return "unknown";
}

absl::Status ItemCatalog::Validate(int32_t num_items) const {
  if (!available.empty() && static_cast<int64_t>(available.size()) != num_items) {
    return absl::InvalidArgumentError(absl::StrCat("catalogue 'available' has ", available.size(),
                                                   " entries for ", num_items, " items"));
  }
  if (category_indptr.empty()) {
    if (!category_ids.empty()) {
      return absl::InvalidArgumentError("catalogue has category_ids without category_indptr");
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(category_indptr.size()) != int64_t{num_items} + 1) {
    return absl::InvalidArgumentError(absl::StrCat("catalogue 'category_indptr' has ",
                                                   category_indptr.size(), " entries, expected ",
                                                   int64_t{num_items} + 1));
  }
  if (category_indptr.front() != 0 ||
      category_indptr.back() != static_cast<int64_t>(category_ids.size()) ||
      !std::is_sorted(category_indptr.begin(), category_indptr.end())) {
    return absl::InvalidArgumentError(
        "catalogue 'category_indptr' must rise from 0 to the size of category_ids");
  }
  return absl::OkStatus();
}

bool ItemCatalog::InAnyCategory(int32_t item, std::span<const int32_t> categories) const {
  if (category_indptr.empty()) return false;
  for (int64_t j = category_indptr[item]; j < category_indptr[item + 1]; ++j) {
    if (std::binary_search(categories.begin(), categories.end(), category_ids[j])) return true;
  }
  return false;
}

// The per-request predicate "may this item be returned".
struct Recommender::Filter {
  std::vector<int32_t> excluded;  // sorted, unique
  const ItemCatalog* catalog = nullptr;
  bool check_available = false;
  std::vector<int32_t> categories;  // sorted, unique; empty = any
  int ef_search = 0;                // HNSW beam of this query; 0 = the index's default

  // True if availability or categories filter, i.e. how many items fail is not known upfront.
  bool open_ended() const { return check_available || !categories.empty(); }

  bool Passes(int32_t item) const {
    if (std::binary_search(excluded.begin(), excluded.end(), item)) return false;
    if (check_available && !catalog->IsAvailable(item)) return false;
    if (!categories.empty() && !catalog->InAnyCategory(item, categories)) return false;
    return true;
  }
};

absl::StatusOr<Recommender> Recommender::Create(std::shared_ptr<const FactorModel> model,
                                                std::shared_ptr<const ItemIndex> index,
                                                std::shared_ptr<const ItemCatalog> catalog) {
  if (model == nullptr) return absl::InvalidArgumentError("Recommender needs a model");
  const int32_t n = model->num_items();
  if (model->item_popularity.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", model->item_popularity.size(),
                                                   " popularity entries for ", n, " items"));
  }
  if (index != nullptr) {
    if (!model->has_factors()) {
      return absl::InvalidArgumentError("an item index was given for a model without factors");
    }
    if (index->num_items() != n || index->factors() != model->item_factors.cols() ||
        index->has_bias() != model->has_biases()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "item index (", index->num_items(), " items, ", index->factors(), " factors",
          index->has_bias() ? ", biased" : "", ") does not match the model (", n, " items, ",
          model->item_factors.cols(), " factors", model->has_biases() ? ", biased" : "", ")"));
    }
  }
  if (catalog != nullptr) {
    if (absl::Status s = catalog->Validate(n); !s.ok()) return s;
  }
  Recommender r;
  r.popular_order_.resize(n);
  std::iota(r.popular_order_.begin(), r.popular_order_.end(), 0);
  const Eigen::VectorXf& pop = model->item_popularity;
  std::stable_sort(r.popular_order_.begin(), r.popular_order_.end(),
                   [&](int32_t a, int32_t b) { return pop[a] > pop[b]; });
  if (index == nullptr && model->has_factors()) {
    r.normalized_items_ = model->item_factors.rowwise().normalized();
  }
  r.model_ = std::move(model);
  r.index_ = std::move(index);
  r.catalog_ = std::move(catalog);
  return r;
}

absl::StatusOr<Recommender::Filter> Recommender::MakeFilter(const RecommendOptions& options,
                                                            std::span<const int32_t> seen) const {
  if (options.n < 0 || options.offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("n and offset must be >= 0, got n = ", options.n,
                                                   ", offset = ", options.offset));
  }
  if (options.ef_search < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ef_search must be >= 0, got ", options.ef_search));
  }
  const int32_t num_items = model_->num_items();
  Filter f;
  f.ef_search = options.ef_search;
  f.excluded.reserve(options.exclude.size() + (options.exclude_seen ? seen.size() : 0));
  for (int32_t i : options.exclude) {
    if (i < 0 || i >= num_items) {
      return absl::InvalidArgumentError(
          absl::StrCat("excluded item ", i, " is outside [0, ", num_items, ")"));
    }
    f.excluded.push_back(i);
  }
  if (options.exclude_seen) {
    for (int32_t i : seen) {
      if (i >= 0 && i < num_items) f.excluded.push_back(i);
    }
  }
  std::sort(f.excluded.begin(), f.excluded.end());
  f.excluded.erase(std::unique(f.excluded.begin(), f.excluded.end()), f.excluded.end());
  f.catalog = catalog_.get();
  f.check_available =
      options.exclude_unavailable && catalog_ != nullptr && !catalog_->available.empty();
  if (!options.categories.empty()) {
    if (catalog_ == nullptr) {
      return absl::InvalidArgumentError("a category filter needs an item catalogue");
    }
    f.categories = options.categories;
    std::sort(f.categories.begin(), f.categories.end());
    f.categories.erase(std::unique(f.categories.begin(), f.categories.end()), f.categories.end());
  }
  return f;
}

int Recommender::Beam(const Filter& filter) const {
  const int beam = index_->default_ef_search();  // 0 for an exact index
  return beam > 0 && filter.ef_search > 0 ? filter.ef_search : beam;
}

ItemSearchParams Recommender::SearchParams(const Filter& filter) {
  ItemSearchParams p;
  p.ef_search = filter.ef_search;
  return p;
}

std::vector<Recommendation> Recommender::Popular(const Filter& filter, int need) const {
  std::vector<Recommendation> out;
  out.reserve(need);
  for (int32_t item : popular_order_) {
    if (static_cast<int>(out.size()) >= need) break;
    if (!filter.Passes(item)) continue;
    out.push_back({item, model_->item_popularity[item], RecommendationSource::kPopular});
  }
  return out;
}

// `query` is in the index's space ([p_u, 1] with biases); the predicted rating of an explicit
// model is offset_score (mu + b_u) plus query . [q_i, b_i].
absl::StatusOr<std::vector<Recommendation>> Recommender::Personalized(std::span<const float> query,
                                                                      float offset_score,
                                                                      const Filter& filter,
                                                                      int need) const {
  const FactorModel& m = *model_;
  const int64_t num_items = m.num_items();
  const bool explicit_scores = m.has_biases();
  auto to_rating = [&](float ip) {
    if (!explicit_scores) return ip;
    const float r = offset_score + ip;
    return m.max_value > m.min_value ? std::clamp(r, m.min_value, m.max_value) : r;
  };
  if (need == 0) return std::vector<Recommendation>{};
  if (index_ != nullptr) {
    auto fetched = OverFetch(
        filter, need, num_items, Beam(filter),
        [&](int k, float* scores, int64_t* items) {
          return index_->Search(1, query.data(), k, scores, items, SearchParams(filter));
        },
        to_rating, RecommendationSource::kPersonalized);
    if (!fetched.ok()) return fetched.status();
    if (*fetched) return std::move(**fetched);
  }
  // Brute force: exact, and what a very selective filter (or no index) needs anyway.
  Eigen::Map<const Eigen::VectorXf> p(query.data(), m.item_factors.cols());
  Eigen::VectorXf s = m.item_factors * p;
  if (explicit_scores) s += m.item_bias;
  return TopFiltered(std::move(s), filter, need, to_rating, RecommendationSource::kPersonalized);
}

absl::StatusOr<std::vector<Recommendation>> Recommender::Cosine(int32_t item, const Filter& filter,
                                                                int need) const {
  const FactorModel& m = *model_;
  const int64_t num_items = m.num_items();
  if (need == 0) return std::vector<Recommendation>{};
  auto identity = [](float x) { return x; };
  if (index_ != nullptr) {
    const float* q = m.item_factors.row(item).data();
    auto fetched = OverFetch(
        filter, need, num_items, Beam(filter),
        [&](int k, float* scores, int64_t* items) {
          return index_->SearchSimilar(1, q, k, scores, items, SearchParams(filter));
        },
        identity, RecommendationSource::kSimilar);
    if (!fetched.ok()) return fetched.status();
    if (*fetched) return std::move(**fetched);
  }
  const FactorMatrix normalized = normalized_items_.size() > 0
                                      ? FactorMatrix()
                                      : FactorMatrix(m.item_factors.rowwise().normalized());
  const FactorMatrix& items = normalized_items_.size() > 0 ? normalized_items_ : normalized;
  const Eigen::VectorXf qn = m.item_factors.row(item).transpose().normalized();
  return TopFiltered(items * qn, filter, need, identity, RecommendationSource::kSimilar);
}

namespace {

// Drops the first `offset` results (paging); the caller fetched offset + n.
std::vector<Recommendation> Page(std::vector<Recommendation> all, int offset) {
  if (offset >= static_cast<int>(all.size())) return {};
  all.erase(all.begin(), all.begin() + offset);
  return all;
}

}  // namespace

absl::StatusOr<std::vector<Recommendation>> Recommender::Recommend(
    int32_t user, const RecommendOptions& options) const {
  const FactorModel& m = *model_;
  const bool known = user >= 0 && user < m.num_users();
  std::span<const int32_t> seen;
  if (known && m.seen.rows() == m.num_users()) seen = m.seen.RowIndices(user);
  auto filter = MakeFilter(options, seen);
  if (!filter.ok()) return filter.status();
  const int need = options.offset + options.n;
  // A known user without training interactions has factors fitted to nothing (the
  // regulariser's zero vector): popularity ranks better than that.
  if (!known || !m.has_factors() || (m.seen.rows() == m.num_users() && seen.empty())) {
    return Page(Popular(*filter, need), options.offset);
  }
  const int k = static_cast<int>(m.user_factors.cols());
  std::vector<float> query(k + (m.has_biases() ? 1 : 0));
  std::copy_n(m.user_factors.row(user).data(), k, query.begin());
  if (m.has_biases()) query[k] = 1.0f;
  const float offset_score = m.has_biases() ? m.global_mean + m.user_bias[user] : 0.0f;
  auto out = Personalized(query, offset_score, *filter, need);
  if (!out.ok()) return out.status();
  return Page(*std::move(out), options.offset);
}

absl::StatusOr<std::vector<Recommendation>> Recommender::RecommendForVector(
    std::span<const float> factors, float user_bias, std::span<const int32_t> seen,
    const RecommendOptions& options) const {
  const FactorModel& m = *model_;
  auto filter = MakeFilter(options, seen);
  if (!filter.ok()) return filter.status();
  const int need = options.offset + options.n;
  if (factors.empty() || !m.has_factors()) return Page(Popular(*filter, need), options.offset);
  const int k = static_cast<int>(m.item_factors.cols());
  if (static_cast<int>(factors.size()) != k) {
    return absl::InvalidArgumentError(
        absl::StrCat("user vector has ", factors.size(), " factors, the model ", k));
  }
  std::vector<float> query(k + (m.has_biases() ? 1 : 0));
  std::copy(factors.begin(), factors.end(), query.begin());
  if (m.has_biases()) query[k] = 1.0f;
  const float offset_score = m.has_biases() ? m.global_mean + user_bias : 0.0f;
  auto out = Personalized(query, offset_score, *filter, need);
  if (!out.ok()) return out.status();
  return Page(*std::move(out), options.offset);
}

absl::StatusOr<std::vector<Recommendation>> Recommender::Similar(
    int32_t item, const RecommendOptions& options) const {
  const FactorModel& m = *model_;
  if (!m.has_factors()) {
    return absl::InvalidArgumentError("similar items need a model with factors");
  }
  if (item < 0 || item >= m.num_items()) {
    return absl::InvalidArgumentError(
        absl::StrCat("item ", item, " is outside [0, ", m.num_items(), ")"));
  }
  RecommendOptions o = options;
  o.exclude_seen = false;
  o.exclude.push_back(item);  // never the item itself
  auto filter = MakeFilter(o, {});
  if (!filter.ok()) return filter.status();
  auto out = Cosine(item, *filter, options.offset + options.n);
  if (!out.ok()) return out.status();
  return Page(*std::move(out), options.offset);
}

}  // namespace recloop
