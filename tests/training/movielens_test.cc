// Acceptance figures on MovieLens 100K (skipped with a message where the data set is missing).
#include <numeric>

#include "data/reader.h"
#include "data/split.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {
namespace {

absl::StatusOr<double> FoldRmse(const std::string& dir, int fold) {
  const std::string base = dir + "/u" + std::to_string(fold);
  auto train = ReadInteractions(base + ".base", ReadOptions{});
  if (!train.ok()) return train.status();
  auto test = ReadInteractions(base + ".test", ReadOptions{});
  if (!test.ok()) return test.status();
  auto model = TrainModel(*train, TrainOptions{});  // the defaults are what is being tested
  if (!model.ok()) return model.status();
  auto result = Evaluate(*model, *test, EvalOptions{});
  if (!result.ok()) return result.status();
  return *result->rmse;
}

TEST(MovieLens100K, ExplicitAlsDefaultsReachTheTargetRmseOnEveryFold) {
  REQUIRE_ML100K(dir);
  std::vector<double> rmse;
  for (int fold = 1; fold <= 5; ++fold) {
    ASSERT_OK_AND_ASSIGN(double r, FoldRmse(dir, fold));
    rmse.push_back(r);
    std::cout << "u" << fold << " RMSE " << r << "\n";
  }
  EXPECT_LE(rmse[0], 0.925) << "u1";
  const double mean = std::accumulate(rmse.begin(), rmse.end(), 0.0) / rmse.size();
  std::cout << "five-fold mean RMSE " << mean << "\n";
  EXPECT_LE(mean, 0.915);
}

TEST(MovieLens100K, ImplicitAlsBeatsPopularityByHalfAgainOnNdcgAndRecall) {
  REQUIRE_ML100K(dir);
  ReadOptions read;
  read.duplicates = DuplicatePolicy::kSum;
  ASSERT_OK_AND_ASSIGN(Interactions data, ReadInteractions(dir + "/u.data", read));
  ASSERT_OK_AND_ASSIGN(SplitSpec spec, ParseSplitSpec("user:0.2"));
  ASSERT_OK_AND_ASSIGN(SplitResult split, Split(data, spec, 42));
  TrainOptions options;
  options.als.feedback = Feedback::kImplicit;
  ASSERT_OK_AND_ASSIGN(FactorModel als, TrainModel(split.train, options));
  ASSERT_OK_AND_ASSIGN(EvalResult a, Evaluate(als, split.test, EvalOptions{}));
  ASSERT_OK_AND_ASSIGN(EvalResult p, Evaluate(TrainPopular(split.train, Feedback::kImplicit),
                                              split.test, EvalOptions{}));
  std::cout << "implicit ALS ndcg@10 " << a.ndcg << " recall@10 " << a.recall
            << "; popular ndcg@10 " << p.ndcg << " recall@10 " << p.recall << "\n";
  EXPECT_GE(a.ndcg, 1.5 * p.ndcg);
  EXPECT_GE(a.recall, 1.5 * p.recall);
  EXPECT_EQ(a.users, p.users);
}

}  // namespace
}  // namespace recloop
