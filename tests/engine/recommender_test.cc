#include "engine/recommender.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "engine/top_k.h"
#include "gtest/gtest.h"
#include "tests/engine/random_model.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using test::RandomModel;

// Builds a model, its index (of the given type; kAuto = none) and a Recommender over them.
struct Setup {
  std::shared_ptr<const FactorModel> model;
  std::shared_ptr<const ItemIndex> index;
  std::shared_ptr<const ItemCatalog> catalog;
};

// Items with index % 3 == 0 unavailable; item i in categories {i % 5} and, if i % 7 == 0, 100.
std::shared_ptr<ItemCatalog> MakeCatalog(int32_t items) {
  auto c = std::make_shared<ItemCatalog>();
  c->available.resize(items);
  c->category_indptr.push_back(0);
  for (int32_t i = 0; i < items; ++i) {
    c->available[i] = i % 3 != 0;
    c->category_ids.push_back(i % 5);
    if (i % 7 == 0) c->category_ids.push_back(100);
    c->category_indptr.push_back(static_cast<int64_t>(c->category_ids.size()));
  }
  return c;
}

class RecommenderTest : public ::testing::Test {
 protected:
  void Init(bool explicit_feedback, IndexType type = IndexType::kExact, int32_t users = 200,
            int32_t items = 3000) {
    auto m = std::make_shared<FactorModel>(RandomModel(users, items, 16, explicit_feedback, 11));
    model_ = m;
    ItemIndexOptions o;
    o.type = type;
    auto index = ItemIndex::Build(*m, o);
    ASSERT_OK(index);
    index_ = std::make_shared<ItemIndex>(*std::move(index));
    catalog_ = MakeCatalog(items);
    auto r = Recommender::Create(model_, index_, catalog_);
    ASSERT_OK(r);
    rec_ = std::make_unique<Recommender>(*std::move(r));
  }

  // Brute-force reference: the model's ranking scores, top `n` of those passing `keep`.
  std::vector<ScoredItem> Reference(int32_t user, int n, const std::vector<int32_t>& drop,
                                    bool only_available = false,
                                    std::vector<int32_t> categories = {}) const {
    std::vector<float> s(model_->num_items());
    model_->ScoreItems(user, s);
    std::sort(categories.begin(), categories.end());
    for (int32_t i = 0; i < model_->num_items(); ++i) {
      const bool dropped = std::find(drop.begin(), drop.end(), i) != drop.end() ||
                           (only_available && !catalog_->IsAvailable(i)) ||
                           (!categories.empty() && !catalog_->InAnyCategory(i, categories));
      if (dropped) s[i] = std::numeric_limits<float>::quiet_NaN();
    }
    return TopK(s, n);
  }

  std::vector<int32_t> Seen(int32_t user) const {
    const auto row = model_->seen.RowIndices(user);
    return {row.begin(), row.end()};
  }

  // Same items in the same order, allowing near-ties (float rounding) to swap.
  void ExpectSameRanking(const std::vector<Recommendation>& got,
                         const std::vector<ScoredItem>& want, int32_t user) {
    ASSERT_EQ(got.size(), want.size()) << "user " << user;
    std::vector<float> s(model_->num_items());
    model_->ScoreItems(user, s);
    for (size_t r = 0; r < got.size(); ++r) {
      if (got[r].item != want[r].item) {
        EXPECT_NEAR(s[got[r].item], want[r].score, 1e-4f) << "user " << user << " rank " << r;
      }
    }
  }

  std::shared_ptr<const FactorModel> model_;
  std::shared_ptr<const ItemIndex> index_;
  std::shared_ptr<const ItemCatalog> catalog_;
  std::unique_ptr<Recommender> rec_;
};

TEST_F(RecommenderTest, ExactIndexMatchesBruteForceForEveryUserExplicit) {
  Init(/*explicit_feedback=*/true);
  RecommendOptions o;
  o.n = 10;
  o.exclude_unavailable = false;
  for (int32_t u = 0; u < model_->num_users(); ++u) {
    o.exclude_seen = false;
    ASSERT_OK_AND_ASSIGN(auto all, rec_->Recommend(u, o));
    ExpectSameRanking(all, Reference(u, 10, {}), u);
    for (const auto& r : all) {
      EXPECT_EQ(r.source, RecommendationSource::kPersonalized);
      EXPECT_NEAR(r.score, model_->PredictRating(u, r.item), 1e-4f);
    }
    o.exclude_seen = true;
    ASSERT_OK_AND_ASSIGN(auto unseen, rec_->Recommend(u, o));
    ExpectSameRanking(unseen, Reference(u, 10, Seen(u)), u);
  }
}

TEST_F(RecommenderTest, ExactIndexMatchesBruteForceForEveryUserImplicit) {
  Init(/*explicit_feedback=*/false);
  RecommendOptions o;
  o.n = 10;
  o.exclude_unavailable = false;
  for (int32_t u = 0; u < model_->num_users(); ++u) {
    ASSERT_OK_AND_ASSIGN(auto got, rec_->Recommend(u, o));
    ExpectSameRanking(got, Reference(u, 10, Seen(u)), u);
  }
}

TEST_F(RecommenderTest, FiltersStillReturnExactlyN) {
  Init(true);
  for (int32_t u = 0; u < 50; ++u) {
    RecommendOptions o;
    o.n = 25;
    o.exclude = {1, 2, 4, 5, 7};
    o.categories = {2, 4};
    ASSERT_OK_AND_ASSIGN(auto got, rec_->Recommend(u, o));
    ASSERT_EQ(got.size(), 25u);
    std::vector<int32_t> drop = Seen(u);
    drop.insert(drop.end(), o.exclude.begin(), o.exclude.end());
    ExpectSameRanking(got, Reference(u, 25, drop, true, o.categories), u);
    for (const auto& r : got) {
      EXPECT_TRUE(catalog_->IsAvailable(r.item));
      EXPECT_TRUE(r.item % 5 == 2 || r.item % 5 == 4);
      EXPECT_EQ(std::count(drop.begin(), drop.end(), r.item), 0);
    }
  }
}

TEST_F(RecommenderTest, VerySelectiveFilterReturnsAllThatQualifyAndNoMore) {
  Init(true);
  // Category 100 holds items i % 7 == 0; with i % 5 == 3 and available (i % 3 != 0):
  // i % 105 == 28 or 98 -> 3000 / 105 * 2 ~= 57 items. Ask for more than exist.
  RecommendOptions o;
  o.n = 500;
  o.exclude_seen = false;
  o.categories = {100};
  ASSERT_OK_AND_ASSIGN(auto got, rec_->Recommend(0, o));
  const auto want = Reference(0, 500, {}, true, {100});
  EXPECT_LT(want.size(), 500u);
  ExpectSameRanking(got, want, 0);
  // Exactly enough: n = number qualifying.
  o.n = static_cast<int>(want.size());
  ASSERT_OK_AND_ASSIGN(auto exact, rec_->Recommend(0, o));
  EXPECT_EQ(exact.size(), want.size());
  // A category nobody has: empty, not an error.
  o.categories = {12345};
  ASSERT_OK_AND_ASSIGN(auto none, rec_->Recommend(0, o));
  EXPECT_TRUE(none.empty());
}

TEST_F(RecommenderTest, OffsetPagesThroughTheRanking) {
  Init(true);
  RecommendOptions o;
  o.n = 20;
  ASSERT_OK_AND_ASSIGN(auto first, rec_->Recommend(3, o));
  o.n = 10;
  o.offset = 10;
  ASSERT_OK_AND_ASSIGN(auto second, rec_->Recommend(3, o));
  ASSERT_EQ(second.size(), 10u);
  for (int r = 0; r < 10; ++r) EXPECT_EQ(second[r].item, first[10 + r].item);
}

TEST_F(RecommenderTest, UnknownUserGetsPopularItems) {
  Init(true);
  RecommendOptions o;
  o.n = 15;
  o.exclude = {0};
  ASSERT_OK_AND_ASSIGN(auto got, rec_->Recommend(-1, o));
  ASSERT_EQ(got.size(), 15u);
  // Reference: popularity, ties to the lower index, same filters.
  std::vector<float> pop(model_->item_popularity.data(),
                         model_->item_popularity.data() + model_->num_items());
  for (int32_t i = 0; i < model_->num_items(); ++i) {
    if (!catalog_->IsAvailable(i) || i == 0) pop[i] = std::numeric_limits<float>::quiet_NaN();
  }
  const auto want = TopK(pop, 15);
  for (int r = 0; r < 15; ++r) {
    EXPECT_EQ(got[r].source, RecommendationSource::kPopular);
    EXPECT_EQ(ToString(got[r].source), "popular");
    EXPECT_EQ(got[r].item, want[r].item);
    EXPECT_EQ(got[r].score, want[r].score);
  }
  ASSERT_OK_AND_ASSIGN(auto out_of_range, rec_->Recommend(model_->num_users(), o));
  EXPECT_EQ(out_of_range.front().source, RecommendationSource::kPopular);
  ASSERT_OK_AND_ASSIGN(auto empty_vector, rec_->RecommendForVector({}, 0.0f, {}, o));
  EXPECT_EQ(empty_vector.front().source, RecommendationSource::kPopular);
}

TEST_F(RecommenderTest, VectorQueryEqualsUserQuery) {
  Init(true);
  RecommendOptions o;
  o.n = 10;
  const int32_t u = 7;
  ASSERT_OK_AND_ASSIGN(auto by_user, rec_->Recommend(u, o));
  const auto f = model_->user_factors.row(u);
  const std::vector<int32_t> seen = Seen(u);
  ASSERT_OK_AND_ASSIGN(auto by_vector,
                       rec_->RecommendForVector({f.data(), static_cast<size_t>(f.size())},
                                                model_->user_bias[u], seen, o));
  ASSERT_EQ(by_user.size(), by_vector.size());
  for (size_t r = 0; r < by_user.size(); ++r) {
    EXPECT_EQ(by_user[r].item, by_vector[r].item);
    EXPECT_FLOAT_EQ(by_user[r].score, by_vector[r].score);
  }
  const std::vector<float> wrong(3);
  EXPECT_FALSE(rec_->RecommendForVector(wrong, 0.0f, {}, o).ok());
}

TEST_F(RecommenderTest, SimilarIsNearestByCosineAndNeverTheItemItself) {
  Init(true);
  const FactorMatrix normalized = model_->item_factors.rowwise().normalized();
  for (int32_t item : {0, 1, 500, 2999}) {
    RecommendOptions o;
    o.n = 10;
    o.exclude_unavailable = false;
    ASSERT_OK_AND_ASSIGN(auto got, rec_->Similar(item, o));
    ASSERT_EQ(got.size(), 10u);
    Eigen::VectorXf cos = normalized * normalized.row(item).transpose();
    cos[item] = std::numeric_limits<float>::quiet_NaN();
    const auto want = TopK({cos.data(), static_cast<size_t>(cos.size())}, 10);
    for (int r = 0; r < 10; ++r) {
      EXPECT_NE(got[r].item, item);
      EXPECT_EQ(got[r].source, RecommendationSource::kSimilar);
      EXPECT_NEAR(got[r].score, want[r].score, 1e-5f);
      if (got[r].item != want[r].item) {
        EXPECT_NEAR(cos[got[r].item], want[r].score, 1e-5f);
      }
    }
    // With filters: still exactly n, all available and in category 1.
    o.exclude_unavailable = true;
    o.categories = {1};
    ASSERT_OK_AND_ASSIGN(auto filtered, rec_->Similar(item, o));
    ASSERT_EQ(filtered.size(), 10u);
    for (const auto& r : filtered) {
      EXPECT_NE(r.item, item);
      EXPECT_TRUE(catalog_->IsAvailable(r.item));
      EXPECT_EQ(r.item % 5, 1);
    }
  }
  EXPECT_FALSE(rec_->Similar(-1, {}).ok());
  EXPECT_FALSE(rec_->Similar(model_->num_items(), {}).ok());
}

TEST_F(RecommenderTest, HnswIndexWithFiltersReturnsExactlyN) {
  Init(true, IndexType::kHnsw);
  for (int32_t u = 0; u < 30; ++u) {
    RecommendOptions o;
    o.n = 20;
    o.categories = {0, 3};
    ASSERT_OK_AND_ASSIGN(auto got, rec_->Recommend(u, o));
    ASSERT_EQ(got.size(), 20u);
    const auto seen = Seen(u);
    for (const auto& r : got) {
      EXPECT_TRUE(catalog_->IsAvailable(r.item));
      EXPECT_TRUE(r.item % 5 == 0 || r.item % 5 == 3);
      EXPECT_EQ(std::count(seen.begin(), seen.end(), r.item), 0);
    }
    for (size_t r = 1; r < got.size(); ++r) EXPECT_GE(got[r - 1].score, got[r].score);
  }
}

// Users who have seen many items: the first HNSW search asks only for the beam's worth of
// results (no wider beam), widening only when the filter leaves too few. Recall against the
// exact filtered ranking must hold, and no seen item may come back.
TEST_F(RecommenderTest, HnswExcludeSeenForHeavyUsersKeepsRecall) {
  constexpr int kUsers = 60, kN = 10;
  auto m = std::make_shared<FactorModel>(
      RandomModel(kUsers, 6000, 16, /*explicit_feedback=*/false, 21, /*seen_per_user=*/400));
  model_ = m;
  ItemIndexOptions o;
  o.type = IndexType::kHnsw;
  ASSERT_OK_AND_ASSIGN(ItemIndex index, ItemIndex::Build(*m, o));
  ASSERT_GT(400, index.default_ef_search());  // seen lists longer than the beam
  index_ = std::make_shared<ItemIndex>(std::move(index));
  catalog_ = MakeCatalog(6000);
  ASSERT_OK_AND_ASSIGN(Recommender rec, Recommender::Create(model_, index_, catalog_));
  int hits = 0;
  for (int32_t u = 0; u < kUsers; ++u) {
    RecommendOptions ro;
    ro.n = kN;
    ASSERT_OK_AND_ASSIGN(auto got, rec.Recommend(u, ro));
    ASSERT_EQ(got.size(), static_cast<size_t>(kN));
    const auto seen = Seen(u);
    const auto want = Reference(u, kN, seen, /*only_available=*/true);
    for (const auto& r : got) {
      EXPECT_EQ(std::count(seen.begin(), seen.end(), r.item), 0) << "user " << u;
      for (const auto& w : want) hits += r.item == w.item;
    }
  }
  EXPECT_GE(static_cast<double>(hits) / (kUsers * kN), 0.95);

  // A narrow per-query beam (16 results for 10 wanted among 400 seen) must widen, not come
  // back short; a negative one is refused.
  for (int32_t u = 0; u < kUsers; ++u) {
    RecommendOptions ro;
    ro.n = kN;
    ro.ef_search = 16;
    ASSERT_OK_AND_ASSIGN(auto got, rec.Recommend(u, ro));
    ASSERT_EQ(got.size(), static_cast<size_t>(kN));
    const auto seen = Seen(u);
    for (const auto& r : got) EXPECT_EQ(std::count(seen.begin(), seen.end(), r.item), 0);
  }
  RecommendOptions bad;
  bad.ef_search = -1;
  EXPECT_EQ(rec.Recommend(0, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RecommenderTest, WithoutIndexAnswersByBruteForce) {
  Init(true);
  ASSERT_OK_AND_ASSIGN(auto no_index, Recommender::Create(model_, nullptr, catalog_));
  RecommendOptions o;
  o.n = 10;
  for (int32_t u = 0; u < 20; ++u) {
    ASSERT_OK_AND_ASSIGN(auto a, rec_->Recommend(u, o));
    ASSERT_OK_AND_ASSIGN(auto b, no_index.Recommend(u, o));
    ASSERT_EQ(a.size(), b.size());
    for (size_t r = 0; r < a.size(); ++r) EXPECT_NEAR(a[r].score, b[r].score, 1e-4f);
  }
  ASSERT_OK_AND_ASSIGN(auto sim, no_index.Similar(5, o));
  ASSERT_OK_AND_ASSIGN(auto sim_index, rec_->Similar(5, o));
  ASSERT_EQ(sim.size(), sim_index.size());
  for (size_t r = 0; r < sim.size(); ++r) EXPECT_NEAR(sim[r].score, sim_index[r].score, 1e-5f);
}

TEST_F(RecommenderTest, RejectsMismatchesAndBadOptions) {
  Init(true);
  auto other = std::make_shared<FactorModel>(RandomModel(5, 100, 16, true, 12));
  EXPECT_FALSE(Recommender::Create(other, index_, nullptr).ok());
  auto small_catalog = MakeCatalog(10);
  EXPECT_FALSE(Recommender::Create(model_, index_, small_catalog).ok());
  RecommendOptions o;
  o.n = -1;
  EXPECT_FALSE(rec_->Recommend(0, o).ok());
  o.n = 5;
  o.exclude = {model_->num_items()};
  EXPECT_FALSE(rec_->Recommend(0, o).ok());
  ASSERT_OK_AND_ASSIGN(auto no_catalog, Recommender::Create(model_, index_, nullptr));
  o.exclude.clear();
  o.categories = {1};
  EXPECT_FALSE(no_catalog.Recommend(0, o).ok());
  o.n = 0;
  o.categories.clear();
  ASSERT_OK_AND_ASSIGN(auto none, rec_->Recommend(0, o));
  EXPECT_TRUE(none.empty());
}

TEST_F(RecommenderTest, ConcurrentQueriesMatchSequentialOnes) {
  Init(true, IndexType::kHnsw);
  RecommendOptions o;
  o.n = 10;
  std::vector<std::vector<Recommendation>> sequential(model_->num_users());
  for (int32_t u = 0; u < model_->num_users(); ++u) {
    ASSERT_OK_AND_ASSIGN(sequential[u], rec_->Recommend(u, o));
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int32_t u = t; u < model_->num_users(); u += 4) {
        auto got = rec_->Recommend(u, o);
        if (!got.ok() || got->size() != sequential[u].size()) {
          ++mismatches[t];
          continue;
        }
        for (size_t r = 0; r < got->size(); ++r) mismatches[t] += (*got)[r].item != sequential[u][r].item;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace recloop
