#include "engine/fold_in.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "Eigen/Cholesky"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

constexpr int kItems = 60;
constexpr int kFactors = 8;

// A model with random item factors (and biases for explicit feedback); no users are needed to
// fold in. Item 1 is a near-copy of item 0, so that item 1 is item 0's nearest neighbour.
FactorModel MakeModel(FeedbackKind feedback, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  FactorModel m;
  m.params.algorithm = Algorithm::kAls;
  m.params.feedback = feedback;
  m.params.factors = kFactors;
  for (int i = 0; i < kItems; ++i) m.items.GetOrAdd(absl::StrCat("i", i));
  m.item_factors.resize(kItems, kFactors);
  for (int64_t j = 0; j < m.item_factors.size(); ++j) m.item_factors.data()[j] = normal(rng);
  for (int c = 0; c < kFactors; ++c) {
    m.item_factors(1, c) = 1.1f * m.item_factors(0, c) + 0.01f * normal(rng);
  }
  if (feedback == FeedbackKind::kExplicit) {
    m.params.regularization = 0.1f;
    m.params.bias_regularization = 0.05f;
    m.item_bias.resize(kItems);
    for (int i = 0; i < kItems; ++i) m.item_bias[i] = normal(rng);
    m.global_mean = 3.5f;
    m.min_value = 1.0f;
    m.max_value = 5.0f;
  } else {
    m.params.regularization = 2.0f;
    m.params.alpha = 3.0f;
    m.min_value = 0.0f;
    m.max_value = 10.0f;
  }
  m.item_popularity = Eigen::VectorXf::Ones(kItems);
  return m;
}

struct History {
  std::vector<int32_t> items;
  std::vector<float> values;
};

History MakeHistory(FeedbackKind feedback, int n, uint64_t seed = 3) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> all(kItems);
  for (int i = 0; i < kItems; ++i) all[i] = i;
  std::shuffle(all.begin() + 2, all.end(), rng);  // items 0 and 1 stay out of the history
  std::uniform_int_distribution<int> rating(1, 5);
  History h;
  for (int j = 0; j < n; ++j) {
    h.items.push_back(all[2 + j]);
    h.values.push_back(feedback == FeedbackKind::kExplicit ? static_cast<float>(rating(rng))
                                                       : static_cast<float>(rating(rng) - 1));
  }
  return h;
}

TEST(FoldIn, ExplicitSolvesTheBiasedWeightedLambdaNormalEquations) {
  const FactorModel m = MakeModel(FeedbackKind::kExplicit);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const History h = MakeHistory(FeedbackKind::kExplicit, 20);
  ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold(h.items, h.values));
  EXPECT_FALSE(u.cold_start);
  ASSERT_EQ(u.factors.size(), kFactors);
  // The gradient of Σ e² + λ n |x|² + λ_b n b² vanishes at the optimum (computed in double).
  const double n = static_cast<double>(h.items.size());
  Eigen::VectorXd grad_x = Eigen::VectorXd::Zero(kFactors);
  double grad_b = 0;
  for (size_t j = 0; j < h.items.size(); ++j) {
    const int32_t i = h.items[j];
    const Eigen::VectorXd q = m.item_factors.row(i).transpose().cast<double>();
    const double e = h.values[j] - (m.global_mean + u.bias + m.item_bias[i] +
                                    q.dot(u.factors.cast<double>()));
    grad_x += -e * q;
    grad_b += -e;
  }
  grad_x += m.params.regularization * n * u.factors.cast<double>();
  grad_b += m.params.bias_regularization * n * u.bias;
  EXPECT_LT(grad_x.norm(), 1e-4);
  EXPECT_NEAR(grad_b, 0.0, 1e-4);
  // PredictRating and Score agree with the formula.
  const int32_t i = h.items[0];
  const float dot = m.item_factors.row(i).dot(u.factors);
  EXPECT_NEAR(f.Score(u, i), dot + m.item_bias[i], 1e-6);
  EXPECT_NEAR(f.PredictRating(u, i),
              std::clamp(m.global_mean + u.bias + m.item_bias[i] + dot, 1.0f, 5.0f), 1e-6);
}

TEST(FoldIn, ImplicitEqualsTheFullObjectiveSolution) {
  const FactorModel m = MakeModel(FeedbackKind::kImplicit);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  History h = MakeHistory(FeedbackKind::kImplicit, 15);
  h.values[0] = -2.0f;  // a negative value: confidence 1 + α·2, preference 0
  ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold(h.items, h.values));
  EXPECT_FALSE(u.cold_start);
  EXPECT_EQ(u.bias, 0.0f);
  // Reference: Σ over every item of c (p − x·y)² + λ|x|², formed directly in double.
  std::vector<double> c(kItems, 1.0), p(kItems, 0.0);
  for (size_t j = 0; j < h.items.size(); ++j) {
    c[h.items[j]] = 1.0 + m.params.alpha * std::abs(h.values[j]);
    p[h.items[j]] = h.values[j] > 0 ? 1.0 : 0.0;
  }
  Eigen::MatrixXd a = Eigen::MatrixXd::Identity(kFactors, kFactors) * m.params.regularization;
  Eigen::VectorXd b = Eigen::VectorXd::Zero(kFactors);
  for (int i = 0; i < kItems; ++i) {
    const Eigen::VectorXd y = m.item_factors.row(i).transpose().cast<double>();
    a += c[i] * y * y.transpose();
    b += c[i] * p[i] * y;
  }
  const Eigen::VectorXd expected = a.ldlt().solve(b);
  EXPECT_LT((u.factors.cast<double>() - expected).norm(), 1e-5 * (1 + expected.norm()));
  EXPECT_NEAR(f.Score(u, 5), m.item_factors.row(5).dot(u.factors), 1e-6);
}

// A model trained by CG (params.cg_steps > 0, the implicit default) is folded by warm-started
// CG to kFoldCgTolerance: from no start, from a random one and from the solution itself, at the
// factor counts with a compile-time kernel (16, 64) and one without (24), the result is the
// system's solution (formed and solved in double) to float precision.
TEST(FoldIn, CgTrainedImplicitModelFoldsByCgToTheSolution) {
  for (const int k : {16, 24, 64}) {
    SCOPED_TRACE(absl::StrCat("K = ", k));
    std::mt19937_64 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    FactorModel m;
    m.params.algorithm = Algorithm::kAls;
    m.params.feedback = FeedbackKind::kImplicit;
    m.params.factors = k;
    m.params.regularization = 5.0f;
    m.params.alpha = 8.0f;
    m.params.confidence = Confidence::kLog;
    m.params.cg_steps = 3;
    constexpr int kManyItems = 400;
    for (int i = 0; i < kManyItems; ++i) m.items.GetOrAdd(absl::StrCat("i", i));
    m.item_factors.resize(kManyItems, k);
    for (int64_t j = 0; j < m.item_factors.size(); ++j) m.item_factors.data()[j] = normal(rng);
    m.item_popularity = Eigen::VectorXf::Ones(kManyItems);
    ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
    std::vector<int32_t> items;
    std::vector<float> values;
    for (int j = 0; j < 50; ++j) {
      items.push_back(j * 7 % kManyItems);
      values.push_back(j % 9 == 0 ? -1.0f : static_cast<float>(1 + j % 4));
    }
    Eigen::MatrixXd a = m.item_factors.cast<double>().transpose() * m.item_factors.cast<double>();
    a.diagonal().array() += m.params.regularization;
    Eigen::VectorXd b = Eigen::VectorXd::Zero(k);
    for (size_t j = 0; j < items.size(); ++j) {
      const Eigen::VectorXd y = m.item_factors.row(items[j]).transpose().cast<double>();
      const double c = 1.0 + m.params.alpha * std::log1p(std::abs(values[j]));
      a += (c - 1.0) * y * y.transpose();
      if (values[j] > 0) b += c * y;
    }
    const Eigen::VectorXd expected = a.llt().solve(b);
    std::vector<float> random_start(k);
    for (float& v : random_start) v = normal(rng);
    std::vector<float> solution(expected.size());
    for (int c = 0; c < k; ++c) solution[c] = static_cast<float>(expected[c]);
    const std::vector<std::vector<float>> starts = {{}, random_start, solution};
    for (size_t s = 0; s < starts.size(); ++s) {
      SCOPED_TRACE(absl::StrCat("start ", s));
      ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold(items, values, starts[s]));
      EXPECT_LT((u.factors.cast<double>() - expected).norm(), 1e-5 * expected.norm());
      // CG, not Cholesky: a start at the solution needs no step and comes back unchanged.
      if (s == 2) {
        EXPECT_EQ(std::vector<float>(u.factors.begin(), u.factors.end()), solution);
      }
    }
    // A start of another length is no start.
    ASSERT_OK_AND_ASSIGN(const FoldedUser cold, f.Fold(items, values));
    ASSERT_OK_AND_ASSIGN(const FoldedUser odd,
                         f.Fold(items, values, std::vector<float>(k + 1, 1.0f)));
    EXPECT_EQ(odd.factors, cold.factors);
  }
}

TEST(FoldIn, ExtraPositiveInteractionMovesTowardTheItemAndItsNeighbour) {
  for (FeedbackKind fb : {FeedbackKind::kExplicit, FeedbackKind::kImplicit}) {
    SCOPED_TRACE(std::string(ToString(fb)));
    const FactorModel m = MakeModel(fb);
    ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
    History h = MakeHistory(fb, 10);
    ASSERT_OK_AND_ASSIGN(const FoldedUser before, f.Fold(h.items, h.values));
    // Item 0, liked as much as the data allows; item 1 is its near-copy and is not touched.
    h.items.push_back(0);
    h.values.push_back(fb == FeedbackKind::kExplicit ? 5.0f : 4.0f);
    ASSERT_OK_AND_ASSIGN(const FoldedUser after, f.Fold(h.items, h.values));
    EXPECT_GT(f.Score(after, 0), f.Score(before, 0));
    EXPECT_GT(f.Score(after, 1), f.Score(before, 1));
  }
}

TEST(FoldIn, EmptyHistoryIsAColdStart) {
  for (FeedbackKind fb : {FeedbackKind::kExplicit, FeedbackKind::kImplicit}) {
    const FactorModel m = MakeModel(fb);
    ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
    ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold({}, {}));
    EXPECT_TRUE(u.cold_start);
    EXPECT_EQ(u.factors, Eigen::VectorXf::Zero(kFactors));
    EXPECT_EQ(u.bias, 0.0f);
  }
}

TEST(FoldIn, RejectsBadInput) {
  const FactorModel m = MakeModel(FeedbackKind::kExplicit);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const std::vector<int32_t> items = {3, 4};
  const std::vector<float> one_value = {1.0f};
  EXPECT_EQ(f.Fold(items, one_value).status().code(), absl::StatusCode::kInvalidArgument);
  for (int32_t bad : {-1, kItems}) {
    const std::vector<int32_t> bad_items = {3, bad};
    const std::vector<float> values = {1.0f, 2.0f};
    const auto r = f.Fold(bad_items, values);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::to_string(bad)), std::string::npos)
        << r.status();
  }
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    const std::vector<float> values = {1.0f, bad};
    EXPECT_EQ(f.Fold(items, values).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(FoldIn, CreateRejectsModelsItCannotFoldInto) {
  FactorModel popular;
  popular.params.algorithm = Algorithm::kPopular;
  popular.items.GetOrAdd("a");
  popular.item_popularity = Eigen::VectorXf::Ones(1);
  EXPECT_EQ(FoldIn::Create(popular).status().code(), absl::StatusCode::kFailedPrecondition);

  FactorModel no_bias = MakeModel(FeedbackKind::kExplicit);
  no_bias.item_bias.resize(0);
  EXPECT_EQ(FoldIn::Create(no_bias).status().code(), absl::StatusCode::kInvalidArgument);

  FactorModel bad_reg = MakeModel(FeedbackKind::kImplicit);
  bad_reg.params.regularization = -1.0f;
  EXPECT_EQ(FoldIn::Create(bad_reg).status().code(), absl::StatusCode::kInvalidArgument);

  FactorModel bad_shape = MakeModel(FeedbackKind::kImplicit);
  bad_shape.items.GetOrAdd("extra");
  EXPECT_EQ(FoldIn::Create(bad_shape).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FoldIn, ConcurrentFoldsAgreeWithASerialOne) {
  const FactorModel m = MakeModel(FeedbackKind::kImplicit);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const History h = MakeHistory(FeedbackKind::kImplicit, 30);
  ASSERT_OK_AND_ASSIGN(const FoldedUser serial, f.Fold(h.items, h.values));
  constexpr int kThreads = 4;
  std::vector<Eigen::VectorXf> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 50; ++rep) {
        auto r = f.Fold(h.items, h.values);
        if (r.ok()) got[t] = r->factors;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(got[t], serial.factors) << "thread " << t;
}

// The terms of an explanation add up to the folded user's score (Fold, then Score), for both
// kinds of ALS feedback, and the largest term belongs to the history item most like the target.
TEST(FoldIn, ExplanationTermsAddUpToTheFoldedScore) {
  for (const FeedbackKind kind : {FeedbackKind::kExplicit, FeedbackKind::kImplicit}) {
    SCOPED_TRACE(kind == FeedbackKind::kExplicit ? "explicit" : "implicit");
    const FactorModel m = MakeModel(kind);
    ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
    History h = MakeHistory(kind, 12);
    h.items.push_back(0);  // item 1's near-copy, liked strongly
    h.values.push_back(kind == FeedbackKind::kExplicit ? 5.0f : 4.0f);
    ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold(h.items, h.values));
    const std::vector<int32_t> targets = {1, 5, 40};
    ASSERT_OK_AND_ASSIGN(const auto explained, f.Explain(h.items, h.values, targets));
    ASSERT_EQ(explained.size(), targets.size());
    for (size_t t = 0; t < targets.size(); ++t) {
      ASSERT_EQ(explained[t].terms.size(), h.items.size());
      double sum = explained[t].base;
      for (const float term : explained[t].terms) sum += term;
      // Explicit: the rating before its clamp (the user's bias is in the terms).
      const float score = kind == FeedbackKind::kExplicit
                              ? m.global_mean + u.bias + f.Score(u, targets[t])
                              : f.Score(u, targets[t]);
      EXPECT_NEAR(sum, score, 1e-4 * std::max(1.0f, std::abs(score))) << "target " << targets[t];
      EXPECT_EQ(explained[t].base,
                kind == FeedbackKind::kExplicit ? m.global_mean + m.item_bias[targets[t]] : 0.0f);
    }
    const auto& terms = explained[0].terms;  // target 1
    const auto top = std::max_element(terms.begin(), terms.end()) - terms.begin();
    EXPECT_EQ(h.items[top], 0) << "item 0 should explain its near-copy best";
  }
}

TEST(FoldIn, EaseExplanationTermsAreTheEntriesOfB) {
  FactorModel m = MakeModel(FeedbackKind::kImplicit);
  m.params.algorithm = Algorithm::kEase;
  m.params.factors = kItems;
  m.item_factors = FactorMatrix::Random(kItems, kItems);  // row i: B's column i
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const std::vector<int32_t> items = {3, 7, 9};
  const std::vector<float> values = {1.0f, -1.0f, 2.0f};
  ASSERT_OK_AND_ASSIGN(const FoldedUser u, f.Fold(items, values));
  ASSERT_OK_AND_ASSIGN(const auto explained, f.Explain(items, values, std::vector<int32_t>{11}));
  EXPECT_FLOAT_EQ(explained[0].terms[0], m.item_factors(11, 3));
  EXPECT_FLOAT_EQ(explained[0].terms[1], -m.item_factors(11, 7));
  EXPECT_FLOAT_EQ(explained[0].terms[2], m.item_factors(11, 9));
  EXPECT_NEAR(explained[0].terms[0] + explained[0].terms[1] + explained[0].terms[2], f.Score(u, 11),
              1e-5);
}

TEST(FoldIn, ExplainRejectsWhatFoldRejectsAndItemsOutsideTheModel) {
  const FactorModel m = MakeModel(FeedbackKind::kImplicit);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const std::vector<int32_t> items = {2, 3};
  const std::vector<float> values = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_EQ(f.Explain(items, values, std::vector<int32_t>{1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<float> good = {1.0f, 1.0f};
  EXPECT_EQ(f.Explain(items, good, std::vector<int32_t>{kItems}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(
      const auto empty,
      f.Explain(std::span<const int32_t>{}, std::span<const float>{}, std::vector<int32_t>{4}));
  EXPECT_TRUE(empty[0].terms.empty());
}

}  // namespace
}  // namespace recloop
