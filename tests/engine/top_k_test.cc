#include "engine/top_k.h"

#include <cmath>

#include "gtest/gtest.h"

namespace recloop {
namespace {

TEST(TopK, ReturnsBestFirstWithTiesToLowerIndex) {
  const std::vector<float> s = {0.5f, 0.9f, 0.1f, 0.9f, 0.7f};
  const auto top = TopK(s, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0], (ScoredItem{1, 0.9f}));
  EXPECT_EQ(top[1], (ScoredItem{3, 0.9f}));
  EXPECT_EQ(top[2], (ScoredItem{4, 0.7f}));
}

TEST(TopK, SkipsExcludedAndNaN) {
  const std::vector<float> s = {0.5f, 0.9f, NAN, 0.8f, 0.7f};
  const std::vector<int32_t> exclude = {1, 4};
  const auto top = TopK(s, 10, exclude);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].item, 3);
  EXPECT_EQ(top[1].item, 0);
}

TEST(TopK, NonPositiveKIsEmpty) {
  const std::vector<float> s = {1.0f};
  EXPECT_TRUE(TopK(s, 0).empty());
  EXPECT_TRUE(TopK(s, -3).empty());
}

TEST(TopK, MatchesFullSort) {
  std::vector<float> s(1000);
  for (int i = 0; i < 1000; ++i) s[i] = std::sin(i * 0.37f);
  std::vector<int32_t> order(1000);
  for (int i = 0; i < 1000; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
  const auto top = TopK(s, 25);
  for (int r = 0; r < 25; ++r) EXPECT_EQ(top[r].item, order[r]) << "rank " << r;
}

}  // namespace
}  // namespace recloop
