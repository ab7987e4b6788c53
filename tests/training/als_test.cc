#include "training/als.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "tbb/global_control.h"
#include "test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

// A planted rank-`rank` matrix, observed on a random `density` fraction of its cells. Cells
// not observed go to `held_out`.
struct Planted {
  Interactions train;
  std::vector<std::tuple<int32_t, int32_t, float>> held_out;
};

Planted MakePlanted(int users, int items, int rank, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  FactorMatrix u(users, rank), v(items, rank);
  for (int64_t k = 0; k < u.size(); ++k) u.data()[k] = normal(rng);
  for (int64_t k = 0; k < v.size(); ++k) v.data()[k] = normal(rng);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  Planted p;
  for (int a = 0; a < users; ++a) p.train.users.GetOrAdd("u" + std::to_string(a));
  for (int b = 0; b < items; ++b) p.train.items.GetOrAdd("i" + std::to_string(b));
  for (int a = 0; a < users; ++a) {
    for (int b = 0; b < items; ++b) {
      const float r = u.row(a).dot(v.row(b));
      if (unif(rng) < density) {
        p.train.Add(a, b, r, 0);
      } else {
        p.held_out.emplace_back(a, b, r);
      }
    }
  }
  return p;
}

std::vector<double> Losses(const Interactions& data, const AlsOptions& o) {
  std::vector<double> losses;
  TrainOptions t;
  t.feedback = o.feedback;
  t.als = o;
  auto m = TrainModel(data, t, [&](const IterationStats& s) { losses.push_back(s.loss); });
  EXPECT_TRUE(m.ok()) << m.status();
  return losses;
}

void ExpectNonIncreasing(const std::vector<double>& losses) {
  ASSERT_GE(losses.size(), 2u);
  for (size_t i = 1; i < losses.size(); ++i) {
    // float arithmetic: allow a relative rounding slack far below any real rise.
    EXPECT_LE(losses[i], losses[i - 1] * (1 + 1e-5)) << "iteration " << i + 1;
  }
  EXPECT_LT(losses.back(), losses.front());
}

TEST(Als, ExplicitRecoversPlantedNoiselessRank8Matrix) {
  Planted p = MakePlanted(300, 200, 8, 0.3, 1);
  TrainOptions t;
  t.als.factors = 8;
  t.als.iterations = 30;
  t.als.regularization = 1e-4f;
  t.als.bias_regularization = 1e-4f;
  ASSERT_OK_AND_ASSIGN(FactorModel m, TrainModel(p.train, t));
  double se = 0;
  for (const auto& [u, i, r] : p.held_out) {
    const double e = r - m.PredictRating(u, i);
    se += e * e;
  }
  const double rmse = std::sqrt(se / p.held_out.size());
  EXPECT_LT(rmse, 0.05) << "held-out RMSE on a noiseless rank-8 matrix";
}

TEST(Als, ExplicitLossNeverRises) {
  Planted p = MakePlanted(120, 80, 4, 0.2, 2);
  AlsOptions o;
  o.factors = 6;
  o.iterations = 12;
  ExpectNonIncreasing(Losses(p.train, o));
}

Interactions ImplicitData() {
  Planted p = MakePlanted(150, 100, 4, 0.1, 3);
  for (auto& v : p.train.value) v = std::abs(v);  // counts-like, all positive
  return p.train;
}

AlsOptions SmallImplicitOptions(bool cholesky) {
  AlsOptions o;
  o.feedback = FeedbackKind::kImplicit;
  o.factors = 8;
  o.iterations = 10;
  o.regularization = 0.1f;
  o.cholesky = cholesky;
  return o;
}

TEST(Als, ImplicitConjugateGradientLossNeverRises) {
  ExpectNonIncreasing(Losses(ImplicitData(), SmallImplicitOptions(false)));
}

TEST(Als, ImplicitCholeskyLossNeverRises) {
  ExpectNonIncreasing(Losses(ImplicitData(), SmallImplicitOptions(true)));
}

TEST(Als, ConjugateGradientConvergesToTheExactSolution) {
  AlsOptions o = SmallImplicitOptions(false);
  o.iterations = 15;
  o.cg_steps = 3;
  const double cg = Losses(ImplicitData(), o).back();
  o.cholesky = true;
  const double exact = Losses(ImplicitData(), o).back();
  EXPECT_NEAR(cg, exact, 0.01 * exact);
}

FactorModel TrainWithThreads(const Interactions& data, FeedbackKind f, int threads) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  TrainOptions t;
  t.feedback = f;
  t.als.factors = 16;
  t.als.iterations = 4;
  t.als.seed = 1234;
  auto m = TrainModel(data, t);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(m).value();
}

TEST(Als, SameSeedAndThreadsGiveBitIdenticalFactors) {
  Planted p = MakePlanted(200, 150, 4, 0.15, 4);
  for (FeedbackKind f : {FeedbackKind::kExplicit, FeedbackKind::kImplicit}) {
    const FactorModel a = TrainWithThreads(p.train, f, 2);
    const FactorModel b = TrainWithThreads(p.train, f, 2);
    EXPECT_EQ(a.user_factors, b.user_factors);
    EXPECT_EQ(a.item_factors, b.item_factors);
    EXPECT_EQ(a.user_bias, b.user_bias);
    // Rows are solved independently, so the thread count does not matter either.
    const FactorModel c = TrainWithThreads(p.train, f, 1);
    EXPECT_EQ(a.user_factors, c.user_factors);
    EXPECT_EQ(a.item_factors, c.item_factors);
  }
}

TEST(Als, DifferentSeedsGiveDifferentFactors) {
  Planted p = MakePlanted(50, 40, 4, 0.3, 5);
  TrainOptions t;
  t.als.factors = 4;
  t.als.iterations = 2;
  t.als.seed = 1;
  ASSERT_OK_AND_ASSIGN(FactorModel a, TrainModel(p.train, t));
  t.als.seed = 2;
  ASSERT_OK_AND_ASSIGN(FactorModel b, TrainModel(p.train, t));
  EXPECT_NE(a.user_factors, b.user_factors);
}

TEST(Als, RejectsBadOptionsNamingTheField) {
  AlsOptions o;
  o.factors = 0;
  EXPECT_NE(ValidateAlsOptions(o).message().find("factors"), std::string_view::npos);
  o = AlsOptions{};
  o.iterations = 0;
  EXPECT_NE(ValidateAlsOptions(o).message().find("iterations"), std::string_view::npos);
  o = AlsOptions{};
  o.alpha = -1;
  EXPECT_NE(ValidateAlsOptions(o).message().find("alpha"), std::string_view::npos);
  o = AlsOptions{};
  o.cg_steps = 0;
  EXPECT_NE(ValidateAlsOptions(o).message().find("cg_steps"), std::string_view::npos);
  o = AlsOptions{};
  o.regularization = NAN;
  EXPECT_FALSE(ValidateAlsOptions(o).ok());
  EXPECT_TRUE(ValidateAlsOptions(AlsOptions{}).ok());
}

TEST(Als, EmptyTrainingDataIsAnError) {
  Interactions empty;
  EXPECT_EQ(TrainModel(empty, TrainOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Popular, ScoresAreTrainingCounts) {
  Interactions d;
  for (auto [u, i] : std::vector<std::pair<const char*, const char*>>{
           {"a", "x"}, {"b", "x"}, {"c", "x"}, {"a", "y"}, {"b", "z"}, {"c", "z"}}) {
    d.Add(d.users.GetOrAdd(u), d.items.GetOrAdd(i), 1.0f, 0);
  }
  const FactorModel m = TrainPopular(d, FeedbackKind::kImplicit);
  EXPECT_EQ(m.params.algorithm, Algorithm::kPopular);
  EXPECT_FALSE(m.has_factors());
  std::vector<float> scores(3);
  m.ScoreItems(0, scores);
  EXPECT_EQ(scores, (std::vector<float>{3, 1, 2}));
  EXPECT_TRUE(m.seen.Contains(0, 1));
}

}  // namespace
}  // namespace recloop
