// Fold-in against real ALS training: folding in a user's training history after convergence
// gives back the trained vector. Lives with the training tests since it needs the trainer.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/fold_in.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

// A planted low-rank matrix observed on a random `density` fraction of cells. Explicit values
// are ratings around 3; implicit values are small positive counts (with a few negatives).
Interactions MakePlanted(FeedbackKind feedback, int users, int items, int rank, double density,
                         uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  FactorMatrix u(users, rank), v(items, rank);
  for (int64_t k = 0; k < u.size(); ++k) u.data()[k] = normal(rng);
  for (int64_t k = 0; k < v.size(); ++k) v.data()[k] = normal(rng);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  Interactions d;
  for (int a = 0; a < users; ++a) d.users.GetOrAdd(absl::StrCat("u", a));
  for (int b = 0; b < items; ++b) d.items.GetOrAdd(absl::StrCat("i", b));
  for (int a = 0; a < users; ++a) {
    for (int b = 0; b < items; ++b) {
      if (unif(rng) >= density) continue;
      const float r = u.row(a).dot(v.row(b));
      if (feedback == FeedbackKind::kExplicit) {
        d.Add(a, b, 3.0f + 0.5f * r, 0);
      } else {
        d.Add(a, b, unif(rng) < 0.05 ? -1.0f : std::round(1.0f + std::abs(r)), 0);
      }
    }
  }
  return d;
}

FactorModel Train(const Interactions& d, const AlsOptions& als) {
  TrainOptions t;
  t.feedback = als.feedback;
  t.als = als;
  auto m = TrainModel(d, t);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : FactorModel{};
}

// Folds in every user's training history and returns the largest difference from the trained
// vector (and bias).
double MaxFoldInError(const FactorModel& m) {
  auto f = FoldIn::Create(m);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return INFINITY;
  double worst = 0;
  for (int32_t u = 0; u < m.num_users(); ++u) {
    auto folded = f->Fold(m.seen.RowIndices(u), m.seen.RowValues(u));
    EXPECT_TRUE(folded.ok()) << folded.status();
    if (!folded.ok()) return INFINITY;
    const double e = (folded->factors - m.user_factors.row(u).transpose()).cwiseAbs().maxCoeff();
    worst = std::max(worst, e);
    if (m.has_biases()) worst = std::max(worst, double{std::abs(folded->bias - m.user_bias[u])});
  }
  return worst;
}

TEST(FoldIn, ExplicitEqualsTrainedUserAfterConvergence) {
  const Interactions d = MakePlanted(FeedbackKind::kExplicit, 60, 40, 3, 0.4, 1);
  AlsOptions o;
  o.feedback = FeedbackKind::kExplicit;
  o.factors = 5;
  o.iterations = 300;
  o.regularization = 0.05f;
  o.bias_regularization = 0.05f;
  const FactorModel m = Train(d, o);
  EXPECT_LT(MaxFoldInError(m), 1e-4);
  // Not vacuous: before convergence the item factors still move and the vectors differ.
  o.iterations = 1;
  EXPECT_GT(MaxFoldInError(Train(d, o)), 1e-3);
}

TEST(FoldIn, ImplicitCholeskyEqualsTrainedUserAfterConvergence) {
  const Interactions d = MakePlanted(FeedbackKind::kImplicit, 60, 40, 3, 0.3, 2);
  AlsOptions o;
  o.feedback = FeedbackKind::kImplicit;
  o.factors = 5;
  o.iterations = 300;
  o.regularization = 1.0f;
  o.alpha = 2.0f;
  o.cholesky = true;
  const FactorModel m = Train(d, o);
  EXPECT_LT(MaxFoldInError(m), 1e-4);
}

// Warm-started CG converges to the same fixed point that fold-in solves exactly.
TEST(FoldIn, ImplicitCgEqualsTrainedUserAfterConvergence) {
  const Interactions d = MakePlanted(FeedbackKind::kImplicit, 60, 40, 3, 0.3, 3);
  AlsOptions o;
  o.feedback = FeedbackKind::kImplicit;
  o.factors = 5;
  o.iterations = 300;
  o.regularization = 1.0f;
  o.alpha = 2.0f;
  const FactorModel m = Train(d, o);
  EXPECT_LT(MaxFoldInError(m), 1e-4);
}

TEST(FoldIn, NewLikeRaisesTheItemsNearestNeighbourOnATrainedModel) {
  const Interactions d = MakePlanted(FeedbackKind::kImplicit, 60, 40, 3, 0.3, 4);
  AlsOptions o;
  o.feedback = FeedbackKind::kImplicit;
  o.factors = 5;
  o.iterations = 30;
  o.regularization = 1.0f;
  o.alpha = 2.0f;
  const FactorModel m = Train(d, o);
  ASSERT_OK_AND_ASSIGN(const FoldIn f, FoldIn::Create(m));
  const int32_t u = 0;
  std::vector<int32_t> items(m.seen.RowIndices(u).begin(), m.seen.RowIndices(u).end());
  std::vector<float> values(m.seen.RowValues(u).begin(), m.seen.RowValues(u).end());
  // An item the user has not seen, and its nearest neighbour by cosine (also unseen).
  auto seen = [&](int32_t i) { return std::find(items.begin(), items.end(), i) != items.end(); };
  int32_t liked = 0;
  while (seen(liked)) ++liked;
  int32_t neighbour = -1;
  float best = -2;
  for (int32_t i = 0; i < m.num_items(); ++i) {
    if (i == liked || seen(i)) continue;
    const float cos = m.item_factors.row(i).normalized().dot(m.item_factors.row(liked).normalized());
    if (cos > best) best = cos, neighbour = i;
  }
  ASSERT_GE(neighbour, 0);
  ASSERT_OK_AND_ASSIGN(const FoldedUser before, f.Fold(items, values));
  items.push_back(liked);
  values.push_back(3.0f);
  ASSERT_OK_AND_ASSIGN(const FoldedUser after, f.Fold(items, values));
  EXPECT_GT(f.Score(after, liked), f.Score(before, liked));
  EXPECT_GT(f.Score(after, neighbour), f.Score(before, neighbour)) << "cosine " << best;
}

}  // namespace
}  // namespace recloop
