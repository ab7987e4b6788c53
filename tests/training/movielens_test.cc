// Acceptance figures on MovieLens 100K (skipped with a message where the data set is missing).
#include <algorithm>
#include <numeric>

#include "data/reader.h"
#include "engine/item_index.h"
#include "engine/recommender.h"
#include "data/split.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {
namespace {

absl::StatusOr<double> FoldRmse(const std::string& dir, int fold,
                                 const TrainOptions& options = TrainOptions{}) {
  const std::string base = dir + "/u" + std::to_string(fold);
  auto train = ReadInteractions(base + ".base", ReadOptions{});
  if (!train.ok()) return train.status();
  auto test = ReadInteractions(base + ".test", ReadOptions{});
  if (!test.ok()) return test.status();
  auto model = TrainModel(*train, options);  // the defaults are what is being tested
  if (!model.ok()) return model.status();
  auto result = Evaluate(*model, *test, EvalOptions{});
  if (!result.ok()) return result.status();
  return *result->rmse;
}

// Trains `options` on u1.base ... u5.base, checks RMSE on u1.test against `u1_target` and the
// mean over the five test folds against `mean_target`, and prints every figure.
void ExpectFiveFoldRmse(const std::string& dir, const TrainOptions& options, double u1_target,
                        double mean_target) {
  std::vector<double> rmse;
  for (int fold = 1; fold <= 5; ++fold) {
    ASSERT_OK_AND_ASSIGN(double r, FoldRmse(dir, fold, options));
    rmse.push_back(r);
    std::cout << "u" << fold << " RMSE " << r << "\n";
  }
  EXPECT_LE(rmse[0], u1_target) << "u1";
  const double mean = std::accumulate(rmse.begin(), rmse.end(), 0.0) / rmse.size();
  std::cout << "five-fold mean RMSE " << mean << "\n";
  EXPECT_LE(mean, mean_target);
}

TEST(MovieLens100K, ExplicitAlsDefaultsReachTheTargetRmseOnEveryFold) {
  REQUIRE_ML100K(dir);
  SKIP_ACCURACY_FIGURE_UNDER_SANITIZERS();
  ExpectFiveFoldRmse(dir, TrainOptions{}, 0.925, 0.915);
}

// Issue 7's acceptance: BPMF with its defaults (recloop train's default for explicit ratings)
// reaches RMSE <= 0.905 on u1 and a five-fold mean <= 0.897 (measured 0.902 / 0.894; explicit
// ALS with its defaults: 0.924 / 0.913).
TEST(MovieLens100K, BpmfDefaultsReachTheTargetRmseOnEveryFold) {
  REQUIRE_ML100K(dir);
  SKIP_ACCURACY_FIGURE_UNDER_SANITIZERS();
  TrainOptions options;
  options.algorithm = Algorithm::kBpmf;
  ExpectFiveFoldRmse(dir, options, 0.905, 0.897);
}

TEST(MovieLens100K, ImplicitAlsBeatsPopularityByHalfAgainOnNdcgAndRecall) {
  REQUIRE_ML100K(dir);
  ReadOptions read;
  read.duplicates = DuplicatePolicy::kSum;
  ASSERT_OK_AND_ASSIGN(Interactions data, ReadInteractions(dir + "/u.data", read));
  ASSERT_OK_AND_ASSIGN(SplitSpec spec, ParseSplitSpec("user:0.2"));
  ASSERT_OK_AND_ASSIGN(SplitResult split, Split(data, spec, 42));
  TrainOptions options;
  options.feedback = FeedbackKind::kImplicit;
  ASSERT_OK_AND_ASSIGN(FactorModel als, TrainModel(split.train, options));
  ASSERT_OK_AND_ASSIGN(EvalResult a, Evaluate(als, split.test, EvalOptions{}));
  ASSERT_OK_AND_ASSIGN(EvalResult p, Evaluate(TrainPopular(split.train, FeedbackKind::kImplicit),
                                              split.test, EvalOptions{}));
  std::cout << "implicit ALS ndcg@10 " << a.ndcg << " recall@10 " << a.recall
            << "; popular ndcg@10 " << p.ndcg << " recall@10 " << p.recall << "\n";
  EXPECT_GE(a.ndcg, 1.5 * p.ndcg);
  EXPECT_GE(a.recall, 1.5 * p.recall);
  EXPECT_EQ(a.users, p.users);
}

// Issue 3's acceptance: for every ML-100K user, the exact FAISS index (with the explicit model's
// biases folded into the vectors) returns the model's own top-10 by predicted rating, as a
// brute-force Eigen product over all items ranks them: the same items in the same order, up to
// ties. Checked with and without the exclude-seen filter.
TEST(MovieLens100K, ExactIndexRecommendationsEqualBruteForceTopKForEveryUser) {
  REQUIRE_ML100K(dir);
  ASSERT_OK_AND_ASSIGN(Interactions train, ReadInteractions(dir + "/u1.base", ReadOptions{}));
  ASSERT_OK_AND_ASSIGN(FactorModel trained, TrainModel(train, TrainOptions{}));
  auto model = std::make_shared<const FactorModel>(std::move(trained));
  ItemIndexOptions index_options;
  index_options.type = IndexType::kExact;
  ASSERT_OK_AND_ASSIGN(ItemIndex index, ItemIndex::Build(*model, index_options));
  ASSERT_OK_AND_ASSIGN(
      Recommender rec,
      Recommender::Create(model, std::make_shared<const ItemIndex>(std::move(index))));

  // Unclamped predicted ratings of every (user, item): mu + b_u + P Q^T + b_i.
  const Eigen::MatrixXf scores =
      ((model->user_factors * model->item_factors.transpose()).rowwise() +
       model->item_bias.transpose())
          .colwise() +
      (model->user_bias.array() + model->global_mean).matrix();
  constexpr int kN = 10;
  constexpr float kTie = 2e-5f;  // float rounding of a 65-term dot product is ~1e-6
  int64_t compared = 0;
  for (const bool exclude_seen : {true, false}) {
    RecommendOptions options;
    options.n = kN;
    options.exclude_seen = exclude_seen;
    for (int32_t u = 0; u < model->num_users(); ++u) {
      std::vector<int32_t> order;
      for (int32_t i = 0; i < model->num_items(); ++i) {
        const auto seen = model->seen.RowIndices(u);
        if (!exclude_seen || std::find(seen.begin(), seen.end(), i) == seen.end()) {
          order.push_back(i);
        }
      }
      // kN + 1: the item just below the cut tells whether rank kN - 1 is a tie.
      std::partial_sort(order.begin(), order.begin() + kN + 1, order.end(),
                        [&](int32_t a, int32_t b) { return scores(u, a) > scores(u, b); });
      ASSERT_OK_AND_ASSIGN(std::vector<Recommendation> got, rec.Recommend(u, options));
      ASSERT_EQ(got.size(), kN) << "user " << u;
      for (int r = 0; r < kN; ++r) {
        ASSERT_EQ(got[r].source, RecommendationSource::kPersonalized);
        const float want = scores(u, order[r]);
        // Same score at every rank: the same items in the same order, up to ties.
        ASSERT_NEAR(scores(u, got[r].item), want, kTie)
            << "user " << u << " rank " << r << (exclude_seen ? " (exclude seen)" : "");
        // Where the brute-force score is clear of its neighbours, the very same item.
        const bool clear = (r == 0 || scores(u, order[r - 1]) - want > kTie) &&
                           want - scores(u, order[r + 1]) > kTie;
        if (clear) {
          ASSERT_EQ(got[r].item, order[r]) << "user " << u << " rank " << r;
          ++compared;
        }
      }
    }
  }
  // Ties are rare in float scores: nearly every rank was compared item for item.
  EXPECT_GE(compared, 2 * model->num_users() * kN * 95 / 100);
}

}  // namespace
}  // namespace recloop
