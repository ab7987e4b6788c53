// Evaluate on a tiny hand-built model whose every score and prediction is worked out in the
// comments, plus a random model to check that the result does not depend on the thread count.
#include "training/evaluate.h"

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tbb/task_arena.h"
#include "test_util.h"

namespace recloop {
namespace {

constexpr double kEps = 1e-12;
const double kInvLog2Of3 = 1.0 / std::log2(3.0);
// NDCG@2 of a list whose only hit is at rank 1, with 2 relevant items: 1 / (1 + 1/log2(3)).
const double kNdcgHitAt1Of2 = 1.0 / (1.0 + kInvLog2Of3);
// NDCG@2 of a list whose only hit is at rank 2, with 2 relevant items.
const double kNdcgHitAt2Of2 = kInvLog2Of3 / (1.0 + kInvLog2Of3);

CsrMatrix Seen(int32_t users, int32_t items, const std::vector<std::pair<int32_t, int32_t>>& ui) {
  std::vector<int32_t> row, col;
  std::vector<float> value;
  for (const auto& [u, i] : ui) {
    row.push_back(u);
    col.push_back(i);
    value.push_back(1.0f);
  }
  return CsrMatrix::FromTriplets(users, items, row, col, value);
}

// Model: users u0,u1,u2 (indices 0..2), items a,b,c,d (0..3), 2 factors.
//   user factors  u0 [1,0]  u1 [0,1]  u2 [1,1]     user bias  u0 0.5  u1 -0.5  u2 1
//   item factors  a [1,0]  b [0,1]  c [.5,.5]  d [-1,0]
//   item bias     a 0.25  b 0  c -0.25  d 0.5      global mean 3, range [1, 5]
//   seen          u0 {a}  u1 {b,d}  u2 {d}          popularity  a 1  b 1  c 0  d 2
// Ranking scores (q_i . p_u + b_i):
//   u0: a 1.25  b 0     c 0.25  d -0.5
//   u1: a 0.25  b 1     c 0.25  d 0.5
//   u2: a 1.25  b 1     c 0.75  d -0.5
//
// Test set, with its own ID maps in another order and an unknown user x and item zz:
//   row  user item value  prediction (mean + b_u + b_i + p.q, clamped)   error
//   1    u0   c    4      3 + .5 - .25 + .5 = 3.75                        -0.25
//   2    u0   b    2      3 + .5 + 0 + 0 = 3.5                             1.5
//   3    u1   a    5      3 - .5 + .25 + 0 = 2.75                         -2.25
//   4    u1   zz   3      3 - .5 = 2.5 (unknown item)                     -0.5
//   5    x    a    4      3 + .25 = 3.25 (unknown user)                   -0.75
//   6    u2   a    5      3 + 1 + .25 + 1 = 5.25 -> clamped to 5           0
//   7    u2   c    3      3 + 1 - .25 + 1 = 4.75                           1.75
//   8    u1   d    4      3 - .5 + .5 + 0 = 3                             -1
// Squared errors: .0625 + 2.25 + 5.0625 + .25 + .5625 + 0 + 3.0625 + 1 = 12.25
// Absolute errors: .25 + 1.5 + 2.25 + .5 + .75 + 0 + 1.75 + 1 = 8
class EvaluateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* u : {"u0", "u1", "u2"}) model_.users.GetOrAdd(u);
    for (const char* i : {"a", "b", "c", "d"}) model_.items.GetOrAdd(i);
    model_.params.algorithm = Algorithm::kAls;
    model_.params.feedback = FeedbackKind::kExplicit;
    model_.params.factors = 2;
    model_.user_factors.resize(3, 2);
    model_.user_factors << 1, 0,  //
        0, 1,                     //
        1, 1;
    model_.item_factors.resize(4, 2);
    model_.item_factors << 1, 0,  //
        0, 1,                     //
        0.5, 0.5,                 //
        -1, 0;
    model_.user_bias.resize(3);
    model_.user_bias << 0.5f, -0.5f, 1.0f;
    model_.item_bias.resize(4);
    model_.item_bias << 0.25f, 0.0f, -0.25f, 0.5f;
    model_.global_mean = 3.0f;
    model_.min_value = 1.0f;
    model_.max_value = 5.0f;
    model_.item_popularity.resize(4);
    model_.item_popularity << 1, 1, 0, 2;
    model_.seen = Seen(3, 4, {{0, 0}, {1, 1}, {1, 3}, {2, 3}});

    AddTest("u0", "c", 4);
    AddTest("u0", "b", 2);
    AddTest("u1", "a", 5);
    AddTest("u1", "zz", 3);
    AddTest("x", "a", 4);
    AddTest("u2", "a", 5);
    AddTest("u2", "c", 3);
    AddTest("u1", "d", 4);
  }

  void AddTest(const std::string& user, const std::string& item, float value) {
    test_.Add(test_.users.GetOrAdd(user), test_.items.GetOrAdd(item), value, 0);
  }

  // The model as a popularity model: no factors, no biases.
  FactorModel PopularityModel() const {
    FactorModel m = model_;
    m.params.algorithm = Algorithm::kPopular;
    m.params.factors = 0;
    m.user_factors.resize(0, 0);
    m.item_factors.resize(0, 0);
    m.user_bias.resize(0);
    m.item_bias.resize(0);
    return m;
  }

  FactorModel model_;
  Interactions test_;
};

TEST_F(EvaluateTest, TestIdsAreMappedInADifferentOrder) {
  // The premise of the fixture: test indices differ from the model's.
  EXPECT_EQ(test_.users.External(0), "u0");
  EXPECT_EQ(test_.items.External(0), "c");
  EXPECT_NE(*model_.items.Find("c"), 0);
}

TEST_F(EvaluateTest, CountsRowsUsersAndItems) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 2}));
  EXPECT_EQ(r.k, 2);
  EXPECT_EQ(r.test_interactions, 8);
  EXPECT_EQ(r.unknown_user_rows, 1);  // row 5
  EXPECT_EQ(r.unknown_item_rows, 1);  // row 4
  EXPECT_EQ(r.users, 3);              // u0, u1, u2; x is unknown
  EXPECT_EQ(r.items, 4);
}

TEST_F(EvaluateTest, RatingMetricsOverEveryRow) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 2}));
  ASSERT_TRUE(r.rmse.has_value());
  ASSERT_TRUE(r.mae.has_value());
  EXPECT_NEAR(*r.rmse, std::sqrt(12.25 / 8), kEps);  // 1.2374...
  EXPECT_NEAR(*r.mae, 8.0 / 8, kEps);
}

// k=2, every test row relevant. Candidates exclude each user's seen items.
//   u0: relevant {b,c}; candidates b 0, c .25, d -.5 -> [c, b] (a, the best, is seen)
//       P 1, R 1, NDCG 1, AP 1, HR 1; AUC: b, c both above d -> 1
//   u1: relevant {a,d} (zz unknown); candidates a .25, c .25 -> [a, c] (tie: lower index)
//       d is relevant but seen, so it cannot be hit: P 1/2, R 1/2, NDCG 1/(1+1/log2 3), AP
//       (1/1)/2 = 1/2, HR 1; AUC: positive a vs negative c, tie -> 1/2
//   u2: relevant {a,c}; candidates a 1.25, b 1, c .75 -> [a, b]
//       P 1/2, R 1/2, NDCG 1/(1+1/log2 3), AP 1/2, HR 1; AUC: a > b (1), c < b (0) -> 1/2
//   coverage: {c,b} + {a,c} + {a,b} = {a,b,c} -> 3/4
TEST_F(EvaluateTest, RankingMetricsByHand) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 2}));
  EXPECT_NEAR(r.precision, (1 + 0.5 + 0.5) / 3, kEps);
  EXPECT_NEAR(r.recall, (1 + 0.5 + 0.5) / 3, kEps);
  EXPECT_NEAR(r.ndcg, (1 + 2 * kNdcgHitAt1Of2) / 3, kEps);
  EXPECT_NEAR(r.map, (1 + 0.5 + 0.5) / 3, kEps);
  EXPECT_NEAR(r.hit_rate, 1.0, kEps);
  EXPECT_NEAR(r.auc, (1 + 0.5 + 0.5) / 3, kEps);
  EXPECT_NEAR(r.coverage, 3.0 / 4, kEps);
}

// Relevant only with value >= 4: u0 {c}, u1 {a,d}, u2 {a}. Lists as in RankingMetricsByHand.
//   u0: [c, b] vs {c}: P 1/2, R 1, NDCG 1 (IDCG over min(2,1) = 1 rank), AP 1/min(2,1) = 1,
//       HR 1; AUC: c .25 above b 0 and d -.5 -> 1
//   u1: unchanged: P 1/2, R 1/2, NDCG 1/(1+1/log2 3), AP 1/2, HR 1, AUC 1/2
//   u2: [a, b] vs {a}: P 1/2, R 1, NDCG 1, AP 1, HR 1; AUC: a 1.25 above b 1, c .75 -> 1
TEST_F(EvaluateTest, RelevanceThreshold) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r,
                       Evaluate(model_, test_, EvalOptions{.k = 2, .relevance_threshold = 4}));
  EXPECT_EQ(r.users, 3);
  EXPECT_NEAR(r.precision, 0.5, kEps);
  EXPECT_NEAR(r.recall, (1 + 0.5 + 1) / 3, kEps);
  EXPECT_NEAR(r.ndcg, (2 + kNdcgHitAt1Of2) / 3, kEps);
  EXPECT_NEAR(r.map, (1 + 0.5 + 1) / 3, kEps);
  EXPECT_NEAR(r.hit_rate, 1.0, kEps);
  EXPECT_NEAR(r.auc, (1 + 0.5 + 1) / 3, kEps);
  EXPECT_NEAR(r.coverage, 3.0 / 4, kEps);
  // The threshold does not touch the rating metrics.
  ASSERT_TRUE(r.rmse.has_value());
  EXPECT_NEAR(*r.rmse, std::sqrt(12.25 / 8), kEps);
}

TEST_F(EvaluateTest, ThresholdAboveEveryValueRanksNobody) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r,
                       Evaluate(model_, test_, EvalOptions{.k = 2, .relevance_threshold = 10}));
  EXPECT_EQ(r.users, 0);
  EXPECT_EQ(r.precision, 0.0);
  EXPECT_EQ(r.coverage, 0.0);
  EXPECT_EQ(r.test_interactions, 8);
  EXPECT_TRUE(r.rmse.has_value());
}

// k=1: u0 [c] (relevant), u1 [a] (relevant), u2 [a] (relevant): P 1, HR 1, NDCG 1 (IDCG over
// min(1,2) = 1 rank), AP 1/min(1,2) = 1, R 1/2 each; coverage {a, c} = 2/4.
TEST_F(EvaluateTest, KOfOne) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 1}));
  EXPECT_NEAR(r.precision, 1.0, kEps);
  EXPECT_NEAR(r.recall, 0.5, kEps);
  EXPECT_NEAR(r.ndcg, 1.0, kEps);
  EXPECT_NEAR(r.map, 1.0, kEps);
  EXPECT_NEAR(r.coverage, 0.5, kEps);
}

// k=10 exceeds every candidate list: u0 [c, b, d], u1 [a, c], u2 [a, b, c].
//   P: u0 2/10, u1 1/10, u2 2/10. R: u0 1, u1 1/2 (d is seen), u2 1.
//   NDCG: u0 1 + 1/log2 3 over the same IDCG -> 1; u1 hit at 1 -> 1/(1+1/log2 3);
//         u2 hits at ranks 1 and 3 -> (1 + 1/2) / (1 + 1/log2 3).
//   AP: u0 (1 + 1) / 2 = 1; u1 1 / 2; u2 (1/1 + 2/3) / 2 = 5/6.
//   coverage: {a, b, c, d} = 1 (d recommended to u0 only; seen items never are).
TEST_F(EvaluateTest, KLargerThanCatalogue) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 10}));
  EXPECT_NEAR(r.precision, (0.2 + 0.1 + 0.2) / 3, kEps);
  EXPECT_NEAR(r.recall, (1 + 0.5 + 1) / 3, kEps);
  EXPECT_NEAR(r.ndcg, (1 + kNdcgHitAt1Of2 + 1.5 / (1 + kInvLog2Of3)) / 3, kEps);
  EXPECT_NEAR(r.map, (1 + 0.5 + 5.0 / 6) / 3, kEps);
  EXPECT_NEAR(r.coverage, 1.0, kEps);
}

TEST_F(EvaluateTest, SeenItemsAreNotCandidates) {
  // u0 alone, relevant {b, c}. With its training item a (the best score, 1.25) excluded the
  // list is [c, b]: precision 1. Without the exclusion it would be [a, c]: precision 1/2.
  Interactions only_u0;
  only_u0.Add(only_u0.users.GetOrAdd("u0"), only_u0.items.GetOrAdd("c"), 4, 0);
  only_u0.Add(only_u0.users.GetOrAdd("u0"), only_u0.items.GetOrAdd("b"), 2, 0);
  ASSERT_OK_AND_ASSIGN(const EvalResult with_seen, Evaluate(model_, only_u0, EvalOptions{.k = 2}));
  EXPECT_NEAR(with_seen.precision, 1.0, kEps);  // [c, b]
  EXPECT_NEAR(with_seen.coverage, 2.0 / 4, kEps);

  FactorModel no_seen = model_;
  no_seen.seen = Seen(3, 4, {});
  ASSERT_OK_AND_ASSIGN(const EvalResult without, Evaluate(no_seen, only_u0, EvalOptions{.k = 2}));
  EXPECT_NEAR(without.precision, 0.5, kEps);  // [a, c]
  // AUC with a as a negative: b 0 < a 1.25 (0), > d (1); c .25 < a (0), > d (1) -> 2/4.
  EXPECT_NEAR(without.auc, 0.5, kEps);
}

TEST_F(EvaluateTest, DuplicateTestRowsCountOnceForRanking) {
  ASSERT_OK_AND_ASSIGN(const EvalResult once, Evaluate(model_, test_, EvalOptions{.k = 2}));
  AddTest("u0", "c", 4);
  AddTest("u2", "a", 5);
  ASSERT_OK_AND_ASSIGN(const EvalResult twice, Evaluate(model_, test_, EvalOptions{.k = 2}));
  EXPECT_EQ(twice.test_interactions, 10);
  EXPECT_EQ(twice.users, once.users);
  EXPECT_DOUBLE_EQ(twice.precision, once.precision);
  EXPECT_DOUBLE_EQ(twice.recall, once.recall);
  EXPECT_DOUBLE_EQ(twice.ndcg, once.ndcg);
  EXPECT_DOUBLE_EQ(twice.auc, once.auc);
}

TEST_F(EvaluateTest, ImplicitModelHasNoRatingMetrics) {
  FactorModel implicit = model_;
  implicit.params.feedback = FeedbackKind::kImplicit;
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(implicit, test_, EvalOptions{.k = 2}));
  EXPECT_FALSE(r.rmse.has_value());
  EXPECT_FALSE(r.mae.has_value());
  EXPECT_NEAR(r.precision, 2.0 / 3, kEps);  // ranking as in RankingMetricsByHand
}

// Popularity a 1, b 1, c 0, d 2, the same for every user; k=2.
//   u0: relevant {b,c}; candidates b 1, c 0, d 2 -> [d, b]: hit at 2. P 1/2, R 1/2,
//       NDCG (1/log2 3)/(1 + 1/log2 3), AP (1/2)/2 = 1/4, HR 1; AUC: b, c below d -> 0
//   u1: relevant {a,d}; candidates a 1, c 0 -> [a, c]: hit at 1. P 1/2, R 1/2,
//       NDCG 1/(1 + 1/log2 3), AP 1/2, HR 1; AUC: a above c -> 1
//   u2: relevant {a,c}; candidates a 1, b 1, c 0 -> [a, b] (tie: lower index): hit at 1.
//       P 1/2, R 1/2, NDCG 1/(1 + 1/log2 3), AP 1/2, HR 1; AUC: a = b (1/2), c < b (0) -> 1/4
//   coverage {a, b, d} + ... = {d,b} + {a,c} + {a,b} = all 4 -> 1
TEST_F(EvaluateTest, PopularityModelRanksByPopularity) {
  const FactorModel popular = PopularityModel();
  // Explicit feedback but not ALS: still no rating metrics.
  ASSERT_EQ(popular.params.feedback, FeedbackKind::kExplicit);
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(popular, test_, EvalOptions{.k = 2}));
  EXPECT_FALSE(r.rmse.has_value());
  EXPECT_FALSE(r.mae.has_value());
  EXPECT_EQ(r.users, 3);
  EXPECT_NEAR(r.precision, 0.5, kEps);
  EXPECT_NEAR(r.recall, 0.5, kEps);
  EXPECT_NEAR(r.ndcg, (kNdcgHitAt2Of2 + 2 * kNdcgHitAt1Of2) / 3, kEps);
  EXPECT_NEAR(r.map, (0.25 + 0.5 + 0.5) / 3, kEps);
  EXPECT_NEAR(r.hit_rate, 1.0, kEps);
  EXPECT_NEAR(r.auc, (0 + 1 + 0.25) / 3, kEps);
  EXPECT_NEAR(r.coverage, 1.0, kEps);
}

TEST_F(EvaluateTest, JsonKeys) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r, Evaluate(model_, test_, EvalOptions{.k = 2}));
  const nlohmann::json j = r.ToJson();
  std::set<std::string> keys;
  for (const auto& [key, value] : j.items()) keys.insert(key);
  EXPECT_EQ(keys,
            (std::set<std::string>{"rmse", "mae", "precision@2", "recall@2", "ndcg@2", "map@2",
                                   "hit_rate@2", "auc", "coverage@2", "users", "items",
                                   "test_interactions", "unknown_user_rows", "unknown_item_rows"}));
  EXPECT_DOUBLE_EQ(j["rmse"].get<double>(), *r.rmse);
  EXPECT_DOUBLE_EQ(j["ndcg@2"].get<double>(), r.ndcg);
  EXPECT_DOUBLE_EQ(j["coverage@2"].get<double>(), 0.75);
  EXPECT_EQ(j["users"].get<int64_t>(), 3);
  EXPECT_EQ(j["items"].get<int64_t>(), 4);
  EXPECT_EQ(j["test_interactions"].get<int64_t>(), 8);
  EXPECT_EQ(j["unknown_user_rows"].get<int64_t>(), 1);
  EXPECT_EQ(j["unknown_item_rows"].get<int64_t>(), 1);
}

TEST_F(EvaluateTest, JsonOmitsRatingMetricsWhenAbsent) {
  ASSERT_OK_AND_ASSIGN(const EvalResult r,
                       Evaluate(PopularityModel(), test_, EvalOptions{.k = 10}));
  const nlohmann::json j = r.ToJson();
  EXPECT_FALSE(j.contains("rmse"));
  EXPECT_FALSE(j.contains("mae"));
  EXPECT_TRUE(j.contains("precision@10"));
  EXPECT_TRUE(j.contains("coverage@10"));
  EXPECT_EQ(j.size(), 12u);
}

TEST_F(EvaluateTest, RejectsBadK) {
  for (const int k : {0, -3}) {
    const auto r = Evaluate(model_, test_, EvalOptions{.k = k});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << k;
  }
}

TEST_F(EvaluateTest, RejectsNanThreshold) {
  const auto r =
      Evaluate(model_, test_,
               EvalOptions{.k = 2, .relevance_threshold = std::numeric_limits<float>::quiet_NaN()});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EvaluateTest, RejectsEmptyTest) {
  const auto r = Evaluate(model_, Interactions{}, EvalOptions{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no test interactions"), std::string::npos) << r.status();
}

TEST_F(EvaluateTest, RejectsModelWithoutSeenMatrix) {
  // What TrainAls returns before train.h fills in the rest: indexing it would read out of bounds.
  FactorModel incomplete = model_;
  incomplete.seen = CsrMatrix();
  const auto r = Evaluate(incomplete, test_, EvalOptions{});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// A random model large enough to be split over several oneTBB tasks.
TEST(EvaluateDeterminism, SameResultForAnyThreadCount) {
  constexpr int32_t kUsers = 300, kItems = 120, kFactors = 8;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int32_t> any_item(0, kItems - 1);
  std::uniform_int_distribution<int> rating(1, 5);

  FactorModel model;
  model.params.algorithm = Algorithm::kAls;
  model.params.feedback = FeedbackKind::kExplicit;
  model.params.factors = kFactors;
  for (int32_t u = 0; u < kUsers; ++u) model.users.GetOrAdd("user" + std::to_string(u));
  for (int32_t i = 0; i < kItems; ++i) model.items.GetOrAdd("item" + std::to_string(i));
  model.user_factors.resize(kUsers, kFactors);
  model.item_factors.resize(kItems, kFactors);
  for (int64_t x = 0; x < model.user_factors.size(); ++x)
    model.user_factors.data()[x] = normal(rng);
  for (int64_t x = 0; x < model.item_factors.size(); ++x)
    model.item_factors.data()[x] = normal(rng);
  model.user_bias = Eigen::VectorXf::Zero(kUsers);
  model.item_bias.resize(kItems);
  for (int32_t i = 0; i < kItems; ++i) model.item_bias[i] = 0.1f * normal(rng);
  model.global_mean = 3.5f;
  model.min_value = 1.0f;
  model.max_value = 5.0f;
  model.item_popularity = Eigen::VectorXf::Zero(kItems);
  std::vector<std::pair<int32_t, int32_t>> seen;
  for (int32_t u = 0; u < kUsers; ++u) {
    std::set<int32_t> items;
    for (int n = 0; n < 10; ++n) items.insert(any_item(rng));
    for (const int32_t i : items) {
      seen.emplace_back(u, i);
      model.item_popularity[i] += 1;
    }
  }
  model.seen = Seen(kUsers, kItems, seen);

  Interactions test;
  for (int32_t u = 0; u < kUsers + 20; ++u) {  // 20 users the model does not know
    for (int n = 0; n < 5; ++n) {
      test.Add(test.users.GetOrAdd("user" + std::to_string(u)),
               test.items.GetOrAdd("item" + std::to_string(any_item(rng) + 5)),  // some unknown
               static_cast<float>(rating(rng)), 0);
    }
  }

  const EvalOptions options{.k = 10, .relevance_threshold = 3};
  auto run = [&](int threads) {
    tbb::task_arena arena(threads);
    absl::StatusOr<EvalResult> r;
    arena.execute([&] { r = Evaluate(model, test, options); });
    return r;
  };
  ASSERT_OK_AND_ASSIGN(const EvalResult one, run(1));
  EXPECT_GT(one.users, 100);
  EXPECT_GT(one.unknown_user_rows, 0);
  EXPECT_GT(one.unknown_item_rows, 0);
  EXPECT_GT(one.precision, 0.0);
  for (const int threads : {2, 4}) {
    ASSERT_OK_AND_ASSIGN(const EvalResult many, run(threads));
    // Bitwise equal, not merely close.
    EXPECT_EQ(many.ToJson().dump(), one.ToJson().dump()) << threads << " threads";
    EXPECT_EQ(many.precision, one.precision);
    EXPECT_EQ(many.ndcg, one.ndcg);
    EXPECT_EQ(many.auc, one.auc);
    EXPECT_EQ(*many.rmse, *one.rmse);
  }
}

}  // namespace
}  // namespace recloop
