// FoldHistory (engine/fold_in.h), SwapSides and AppendItems (engine/model_edit.h).
#include "engine/model_edit.h"

#include <string>
#include <tuple>
#include <vector>

#include "engine/fold_in.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

// A small explicit model: 3 users, 4 items, K = 2, with biases and a seen matrix.
FactorModel SmallModel() {
  FactorModel m;
  ModelParams& p = m.params;
  p.algorithm = Algorithm::kAls;
  p.feedback = FeedbackKind::kExplicit;
  p.factors = 2;
  std::tie(p.regularization, p.bias_regularization) = std::make_tuple(0.1f, 0.05f);
  for (const char* u : {"u0", "u1", "u2"}) m.users.GetOrAdd(u);
  for (const char* i : {"i0", "i1", "i2", "i3"}) m.items.GetOrAdd(i);
  m.user_factors.resize(3, 2);
  m.user_factors << 1, 0, 0, 1, 0.5f, 0.5f;
  m.item_factors.resize(4, 2);
  m.item_factors << 1, 1, -1, 0, 0, 2, 0.3f, -0.3f;
  m.user_bias = Eigen::VectorXf::Constant(3, 0.1f);
  m.item_bias = Eigen::VectorXf::Constant(4, -0.2f);
  m.item_popularity = Eigen::VectorXf::Ones(4);
  m.global_mean = 3.0f;
  m.min_value = 1.0f;
  m.max_value = 5.0f;
  m.seen = CsrMatrix::FromArrays(3, 4, {0, 2, 3, 4}, {0, 2, 1, 3}, {4, 5, 3, 2});
  return m;
}

TEST(FoldHistory, ImplicitModelsSumRepeatedItems) {
  FoldHistory h(DuplicateRuleFor(FeedbackKind::kImplicit));
  h.Add(3, 1.0f);
  h.Add(1, 2.0f);
  h.Add(3, 0.5f);
  ASSERT_EQ(h.size(), 2);
  EXPECT_EQ(std::vector<int32_t>(h.items().begin(), h.items().end()),
            (std::vector<int32_t>{3, 1}));  // first-seen order
  EXPECT_EQ(std::vector<float>(h.values().begin(), h.values().end()),
            (std::vector<float>{1.5f, 2.0f}));
}

TEST(FoldHistory, ExplicitModelsKeepTheLatestValue) {
  const FactorModel m = SmallModel();
  FoldHistory h(m);
  h.Add(2, 4.0f);
  h.Add(0, 1.0f);
  h.Add(2, 2.0f);
  h.SortByItem();
  EXPECT_EQ(std::vector<int32_t>(h.items().begin(), h.items().end()), (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(std::vector<float>(h.values().begin(), h.values().end()),
            (std::vector<float>{1.0f, 2.0f}));
  // After sorting, a repeated item still lands on its entry.
  h.Add(0, 5.0f);
  EXPECT_EQ(h.size(), 2);
  EXPECT_EQ(h.values()[0], 5.0f);
}

TEST(FoldHistory, FoldsAsTheFoldInDoes) {
  const FactorModel m = SmallModel();
  ASSERT_OK_AND_ASSIGN(const FoldIn fold, FoldIn::Create(m));
  FoldHistory h(m);
  h.Add(1, 5.0f);
  h.Add(3, 2.0f);
  ASSERT_OK_AND_ASSIGN(const FoldedUser a, h.FoldWith(fold));
  const std::vector<int32_t> items = {1, 3};
  const std::vector<float> values = {5.0f, 2.0f};
  ASSERT_OK_AND_ASSIGN(const FoldedUser b, fold.Fold(items, values));
  EXPECT_EQ(a.factors, b.factors);
  EXPECT_EQ(a.bias, b.bias);
  ASSERT_OK_AND_ASSIGN(const FoldedUser cold, FoldHistory(m).FoldWith(fold));
  EXPECT_TRUE(cold.cold_start);
}

TEST(ModelEdit, SwapSidesExchangesUsersAndItems) {
  const FactorModel m = SmallModel();
  const FactorModel s = SwapSides(m);
  EXPECT_EQ(s.num_items(), 3);
  EXPECT_EQ(s.num_users(), 4);
  EXPECT_EQ(s.items.External(1), "u1");
  EXPECT_EQ(s.users.External(2), "i2");
  EXPECT_EQ(s.item_factors, m.user_factors);
  EXPECT_EQ(s.item_bias, m.user_bias);
  EXPECT_EQ(s.user_bias, m.item_bias);
  EXPECT_EQ(s.global_mean, m.global_mean);
  EXPECT_EQ(s.params.feedback, m.params.feedback);
  // Folding an item in against the users: an item rated by u0 only points u0's way.
  ASSERT_OK_AND_ASSIGN(const FoldIn fold, FoldIn::Create(s));
  const std::vector<int32_t> users = {0};
  const std::vector<float> values = {5.0f};
  ASSERT_OK_AND_ASSIGN(const FoldedUser item, fold.Fold(users, values));
  EXPECT_GT(item.factors[0], 0.0f);
  EXPECT_FLOAT_EQ(item.factors[1], 0.0f);
}

TEST(ModelEdit, AppendItemsAddsRowsAfterTheExistingItems) {
  const FactorModel m = SmallModel();
  FoldedUser f;
  f.factors = Eigen::Vector2f(0.25f, -0.5f);
  f.bias = 0.75f;
  const std::vector<std::string> names = {"new"};
  const std::vector<FoldedUser> folded = {f};
  const std::vector<float> popularity = {3.0f};
  ASSERT_OK_AND_ASSIGN(const FactorModel next, AppendItems(m, names, folded, popularity));
  ASSERT_EQ(next.num_items(), 5);
  EXPECT_EQ(next.items.Find("new"), 4);
  EXPECT_EQ(next.items.Find("i2"), 2);
  EXPECT_EQ(next.item_factors.topRows(4), m.item_factors);
  EXPECT_EQ(next.item_factors(4, 0), 0.25f);
  EXPECT_EQ(next.item_factors(4, 1), -0.5f);
  EXPECT_EQ(next.item_bias[4], 0.75f);
  EXPECT_EQ(next.item_popularity[4], 3.0f);
  EXPECT_EQ(next.seen.cols(), 5);
  EXPECT_EQ(next.seen.rows(), 3);
  EXPECT_EQ(next.seen.nnz(), m.seen.nnz());
  EXPECT_EQ(next.user_factors, m.user_factors);
}

TEST(ModelEdit, AppendItemsRefusesKnownRepeatedOrMisshapenItems) {
  const FactorModel m = SmallModel();
  FoldedUser f;
  f.factors = Eigen::Vector2f(1, 1);
  const std::vector<float> one = {1.0f};
  const std::vector<FoldedUser> folded = {f};
  const std::vector<std::string> known = {"i1"};
  EXPECT_EQ(AppendItems(m, known, folded, one).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> twice = {"a", "a"};
  const std::vector<FoldedUser> two = {f, f};
  const std::vector<float> ones = {1.0f, 1.0f};
  EXPECT_EQ(AppendItems(m, twice, two, ones).status().code(), absl::StatusCode::kInvalidArgument);
  FoldedUser wide;
  wide.factors = Eigen::Vector3f(1, 1, 1);
  const std::vector<std::string> name = {"b"};
  const std::vector<FoldedUser> bad = {wide};
  EXPECT_EQ(AppendItems(m, name, bad, one).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AppendItems(m, name, folded, ones).status().code(), absl::StatusCode::kInvalidArgument);
  FactorModel popularity;
  EXPECT_EQ(AppendItems(popularity, name, folded, one).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace recloop
