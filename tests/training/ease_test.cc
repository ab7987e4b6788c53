// EASE (training/ease.h) against its closed form computed here with a dense solve.
#include "training/ease.h"

#include <vector>

#include "Eigen/Dense"
#include "engine/fold_in.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

// 4 users x 3 items, one dislike (user 3, item 0).
struct Tiny {
  std::vector<int32_t> row = {0, 0, 1, 1, 2, 2, 3, 3};
  std::vector<int32_t> col = {0, 1, 1, 2, 0, 2, 0, 1};
  std::vector<float> val = {1, 2, 3, 1, 5, 1, -1, 4};
  CsrMatrix by_user = CsrMatrix::FromTriplets(4, 3, row, col, val);
  CsrMatrix by_item = by_user.Transpose();
};

TEST(EaseTest, MatchesTheClosedForm) {
  Tiny t;
  EaseOptions o;
  o.regularization = 2.0f;
  ASSERT_OK_AND_ASSIGN(FactorModel m, TrainEase(t.by_user, t.by_item, o));
  // G comes from consumption: the dislike is a 1 there too (it only signs the history).
  Eigen::MatrixXd x = Eigen::MatrixXd::Zero(4, 3);
  for (size_t j = 0; j < t.row.size(); ++j) x(t.row[j], t.col[j]) = 1;
  Eigen::MatrixXd g = x.transpose() * x + 2.0 * Eigen::MatrixXd::Identity(3, 3);
  Eigen::MatrixXd p = g.inverse();
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      const double b = i == j ? 0.0 : -p(i, j) / p(j, j);
      // Item j's vector is column j of B.
      EXPECT_NEAR(m.item_factors(j, i), b, 1e-5) << i << "," << j;
    }
  }
  EXPECT_EQ(m.params.algorithm, Algorithm::kEase);
  EXPECT_EQ(m.params.factors, 3);
  EXPECT_FLOAT_EQ(m.user_factors(3, 0), -1.0f);  // the dislike
  EXPECT_FLOAT_EQ(m.user_factors(2, 0), 1.0f);
}

TEST(EaseTest, FoldInGivesBackTheTrainedUser) {
  Tiny t;
  ASSERT_OK_AND_ASSIGN(FactorModel m, TrainEase(t.by_user, t.by_item, EaseOptions{}));
  for (const char* id : {"a", "b", "c"}) m.items.GetOrAdd(id);  // what the trainer's caller adds
  ASSERT_OK_AND_ASSIGN(const FoldIn fold, FoldIn::Create(m));
  for (int32_t u = 0; u < 4; ++u) {
    ASSERT_OK_AND_ASSIGN(const FoldedUser f,
                         fold.Fold(t.by_user.RowIndices(u), t.by_user.RowValues(u)));
    EXPECT_EQ(f.factors, m.user_factors.row(u).transpose()) << "user " << u;
  }
}

TEST(EaseTest, RefusesMoreItemsThanItsCapAndBadLambda) {
  Tiny t;
  EaseOptions o;
  o.max_items = 2;
  const auto capped = TrainEase(t.by_user, t.by_item, o);
  ASSERT_FALSE(capped.ok());
  EXPECT_NE(capped.status().message().find("use als"), std::string::npos);
  o = EaseOptions{};
  o.regularization = -1.0f;
  const auto bad = TrainEase(t.by_user, t.by_item, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("regularization"), std::string::npos);
}

}  // namespace
}  // namespace recloop
