#include "training/bpmf.h"

#include <cmath>
#include <random>

#include "engine/fold_in.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "tbb/global_control.h"
#include "test_util.h"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {
namespace {

// Ratings from a planted model: 3.5 + user bias + item bias + rank-3 affinity + noise, on a
// random `density` of the cells; the rest held out (without noise: the truth).
struct Planted {
  Interactions train;
  Interactions held_out;
  double noise = 0.0;
};

Planted MakePlanted(int users, int items, double density, double noise, uint64_t seed) {
  constexpr int kRank = 3;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  FactorMatrix u(users, kRank), v(items, kRank);
  for (int64_t k = 0; k < u.size(); ++k) u.data()[k] = 0.7f * normal(rng);
  for (int64_t k = 0; k < v.size(); ++k) v.data()[k] = 0.7f * normal(rng);
  std::vector<float> bu(users), bi(items);
  for (float& b : bu) b = 0.3f * normal(rng);
  for (float& b : bi) b = 0.5f * normal(rng);
  Planted p;
  p.noise = noise;
  for (int a = 0; a < users; ++a) {
    p.train.users.GetOrAdd("u" + std::to_string(a));
    p.held_out.users.GetOrAdd("u" + std::to_string(a));
  }
  for (int b = 0; b < items; ++b) {
    p.train.items.GetOrAdd("i" + std::to_string(b));
    p.held_out.items.GetOrAdd("i" + std::to_string(b));
  }
  for (int a = 0; a < users; ++a) {
    for (int b = 0; b < items; ++b) {
      const float truth = 3.5f + bu[a] + bi[b] + u.row(a).dot(v.row(b));
      if (unif(rng) < density) {
        p.train.Add(a, b, truth + static_cast<float>(noise) * normal(rng), 0);
      } else {
        p.held_out.Add(a, b, truth, 0);
      }
    }
  }
  return p;
}

BpmfOptions SmallOptions() {
  BpmfOptions o;
  o.factors = 4;
  o.burn_in = 20;
  o.samples = 40;
  o.served_samples = 8;
  return o;
}

absl::StatusOr<FactorModel> Train(const Interactions& data, const BpmfOptions& o,
                                  const Interactions* probe = nullptr,
                                  BpmfReport* report = nullptr) {
  TrainOptions t;
  t.algorithm = Algorithm::kBpmf;
  t.bpmf = o;
  TrainHooks run;
  run.probe = probe;
  run.bpmf_report = report;
  return TrainModel(data, t, run);
}

double HeldOutRmse(const FactorModel& m, const Interactions& held_out) {
  auto r = Evaluate(m, held_out, EvalOptions{});
  return r.ok() && r->rmse ? *r->rmse : 1e9;
}

const Planted& SharedPlanted() {
  static const Planted* p = new Planted(MakePlanted(120, 80, 0.3, 0.5, 7));
  return *p;
}

// The chain learns the planted structure: held-out error near the noise level, far below what
// the biases alone (a one-factor-free model) or the global mean achieve.
TEST(Bpmf, PredictsHeldOutRatingsOfAPlantedMatrix) {
  const Planted& p = SharedPlanted();
  ASSERT_OK_AND_ASSIGN(const FactorModel m, Train(p.train, SmallOptions()));
  EXPECT_EQ(m.params.algorithm, Algorithm::kBpmf);
  EXPECT_EQ(m.user_factors.cols(), 4 * 8);
  EXPECT_EQ(m.user_prior.rows(), 8);
  TrainOptions biases_only;  // explicit ALS with a single factor, heavily damped: ~ biases
  biases_only.als.factors = 1;
  biases_only.als.regularization = 50.0f;
  ASSERT_OK_AND_ASSIGN(const FactorModel b, TrainModel(p.train, biases_only));
  const double bpmf = HeldOutRmse(m, p.held_out);
  const double baseline = HeldOutRmse(b, p.held_out);
  std::cout << "held-out RMSE bpmf " << bpmf << ", biases only " << baseline << "\n";
  EXPECT_LT(bpmf, 0.6 * baseline);
  EXPECT_LT(bpmf, p.noise);  // the truth is noiseless; averaging beats a single noisy rating
}

// Same seed: the same model bit for bit, whatever the thread count.
TEST(Bpmf, SameSeedGivesIdenticalModelsWhateverTheThreadCount) {
  const Planted& p = SharedPlanted();
  std::vector<FactorModel> models;
  for (size_t threads : {1, 2, 3}) {
    const tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    ASSERT_OK_AND_ASSIGN(FactorModel m, Train(p.train, SmallOptions()));
    models.push_back(std::move(m));
  }
  for (size_t j = 1; j < models.size(); ++j) {
    EXPECT_TRUE(models[j].user_factors == models[0].user_factors) << j;
    EXPECT_TRUE(models[j].item_factors == models[0].item_factors) << j;
    EXPECT_TRUE(models[j].user_bias == models[0].user_bias) << j;
    EXPECT_TRUE(models[j].item_bias == models[0].item_bias) << j;
    EXPECT_TRUE(models[j].user_prior == models[0].user_prior) << j;
    for (int32_t u = 0; u < 5; ++u) {
      EXPECT_EQ(models[j].PredictRating(u, u), models[0].PredictRating(u, u));
    }
  }
  BpmfOptions other = SmallOptions();
  other.seed = 43;
  ASSERT_OK_AND_ASSIGN(const FactorModel m43, Train(p.train, other));
  EXPECT_FALSE(m43.user_factors == models[0].user_factors);
}

// The served vectors are the kept samples side by side, scaled so that their dot product is
// the samples' average: serving every sample reproduces the full average exactly, and thinning
// costs a little.
TEST(Bpmf, ServingEverySampleReproducesTheFullAverage) {
  const Planted& p = SharedPlanted();
  BpmfOptions o = SmallOptions();
  o.served_samples = o.samples;
  BpmfReport all;
  ASSERT_OK(Train(p.train, o, &p.held_out, &all).status());
  EXPECT_GT(all.probe_rmse_all_samples, 0.0);
  EXPECT_NEAR(all.probe_rmse_served, all.probe_rmse_all_samples, 1e-4);

  o.served_samples = 2;
  BpmfReport thin;
  ASSERT_OK_AND_ASSIGN(const FactorModel m, Train(p.train, o, &p.held_out, &thin));
  // The same chain (same seed): the full average is the same; two samples are noisier.
  EXPECT_DOUBLE_EQ(thin.probe_rmse_all_samples, all.probe_rmse_all_samples);
  EXPECT_GT(thin.probe_rmse_served, thin.probe_rmse_all_samples);
  EXPECT_NEAR(thin.probe_rmse_served, HeldOutRmse(m, p.held_out), 1e-4);
}

// Fold-in takes each served sample's posterior mean: a training user folded in from their
// history predicts about what the model predicts for them.
TEST(Bpmf, FoldInOfATrainingUserPredictsLikeTheModel) {
  const Planted& p = SharedPlanted();
  ASSERT_OK_AND_ASSIGN(const FactorModel m, Train(p.train, SmallOptions()));
  ASSERT_OK_AND_ASSIGN(const FoldIn fold, FoldIn::Create(m));
  double squared = 0.0, spread = 0.0;
  int64_t n = 0;
  for (int32_t u = 0; u < 20; ++u) {
    const auto items = m.seen.RowIndices(u);
    const auto values = m.seen.RowValues(u);
    ASSERT_OK_AND_ASSIGN(const FoldedUser f,
                         fold.Fold({items.data(), items.size()}, {values.data(), values.size()}));
    ASSERT_FALSE(f.cold_start);
    ASSERT_EQ(f.factors.size(), m.item_factors.cols());
    for (int32_t i = 0; i < m.num_items(); ++i) {
      const double d = fold.PredictRating(f, i) - m.PredictRating(u, i);
      const double s = m.PredictRating(u, i) - m.global_mean;
      squared += d * d;
      spread += s * s;
      ++n;
    }
  }
  const double rmse = std::sqrt(squared / n), sd = std::sqrt(spread / n);
  std::cout << "fold-in vs model: RMSE " << rmse << ", spread of the model's predictions " << sd
            << "\n";
  EXPECT_LT(rmse, 0.25 * sd);
}

TEST(Bpmf, SavedModelLoadsWithItsPriorsAndFoldsInTheSame) {
  const Planted& p = SharedPlanted();
  ASSERT_OK_AND_ASSIGN(const FactorModel m, Train(p.train, SmallOptions()));
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(const SavedModel saved, SaveModel(m, dir.File("models")));
  ASSERT_OK_AND_ASSIGN(const FactorModel loaded, LoadModel(saved.path));
  EXPECT_EQ(loaded.params.algorithm, Algorithm::kBpmf);
  EXPECT_EQ(loaded.params.served_samples, 8);
  EXPECT_EQ(loaded.params.samples, 40);
  EXPECT_EQ(loaded.params.burn_in, 20);
  EXPECT_TRUE(loaded.user_prior == m.user_prior);
  EXPECT_TRUE(loaded.item_prior == m.item_prior);
  EXPECT_TRUE(loaded.item_factors == m.item_factors);
  ASSERT_OK_AND_ASSIGN(const FoldIn a, FoldIn::Create(m));
  ASSERT_OK_AND_ASSIGN(const FoldIn b, FoldIn::Create(loaded));
  const std::vector<int32_t> items = {1, 5, 9};
  const std::vector<float> values = {5.0f, 1.0f, 4.0f};
  ASSERT_OK_AND_ASSIGN(const FoldedUser fa, a.Fold(items, values));
  ASSERT_OK_AND_ASSIGN(const FoldedUser fb, b.Fold(items, values));
  EXPECT_TRUE(fa.factors == fb.factors);
  EXPECT_EQ(fa.bias, fb.bias);

  // A prior that does not match the factors is refused, at save and at fold-in.
  FactorModel bad = m;
  bad.user_prior.conservativeResize(3, Eigen::NoChange);
  EXPECT_FALSE(SaveModel(bad, dir.File("bad")).ok());
  EXPECT_FALSE(FoldIn::Create(bad).ok());
}

TEST(Bpmf, RejectsBadOptionsAndImplicitFeedback) {
  const Planted& p = SharedPlanted();
  auto expect_error = [&](BpmfOptions o, const std::string& words) {
    const auto r = Train(p.train, o);
    ASSERT_FALSE(r.ok()) << words;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(words), std::string::npos)
        << r.status().message();
  };
  BpmfOptions o = SmallOptions();
  o.factors = 0;
  expect_error(o, "factors");
  o = SmallOptions();
  o.samples = 0;
  expect_error(o, "samples");
  o = SmallOptions();
  o.served_samples = o.samples + 1;
  expect_error(o, "served samples");
  o = SmallOptions();
  o.burn_in = -1;
  expect_error(o, "burn-in");

  TrainOptions t;
  t.algorithm = Algorithm::kBpmf;
  t.feedback = FeedbackKind::kImplicit;
  const auto r = TrainModel(p.train, t);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("implicit"), std::string::npos);
}

}  // namespace
}  // namespace recloop
