// Each metric against values worked out by hand (the arithmetic is in the comments), plus the
// edge cases of the contract in training/ranking_metrics.h.
#include "training/ranking_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace recloop {
namespace {

using Ids = std::vector<int32_t>;

constexpr double kEps = 1e-12;
const double kInvLog2Of3 = 1.0 / std::log2(3.0);  // discount of rank 2: 0.6309...

// The running example: list [5, 3, 9], relevant {3, 9} (hits at ranks 2 and 3).
const Ids kRanked = {5, 3, 9};
const Ids kRelevant = {3, 9};

TEST(MetricsPrecision, HandComputed) {
  EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, kRelevant, 3), 2.0 / 3);  // hits {3,9} / 3
  EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, kRelevant, 2), 1.0 / 2);  // [5,3]: hit 3, / 2
  EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, kRelevant, 1), 0.0);      // [5]: no hit
}

TEST(MetricsPrecision, KLargerThanListDividesByK) {
  // Two hits in a list of 3, but 5 slots were asked for: 2 / 5.
  EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, kRelevant, 5), 2.0 / 5);
}

TEST(MetricsRecall, HandComputed) {
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, kRelevant, 3), 1.0);      // 2 hits / 2 relevant
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, kRelevant, 2), 1.0 / 2);  // 1 hit / 2 relevant
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, kRelevant, 1), 0.0);
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, kRelevant, 100), 1.0);
  // [5,3,9] against {1,3,4,9}: 2 hits / 4 relevant.
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, Ids{1, 3, 4, 9}, 3), 2.0 / 4);
}

TEST(MetricsNdcg, HandComputed) {
  // k=3: DCG = 1/log2(3) + 1/log2(4); IDCG over min(3, 2) = 2 ranks = 1 + 1/log2(3).
  EXPECT_NEAR(NdcgAtK(kRanked, kRelevant, 3), (kInvLog2Of3 + 0.5) / (1.0 + kInvLog2Of3), kEps);
  EXPECT_NEAR(NdcgAtK(kRanked, kRelevant, 3), 0.693426403617271, 1e-12);
  // k=2: DCG = 1/log2(3) (hit 3 at rank 2); IDCG = 1 + 1/log2(3).
  EXPECT_NEAR(NdcgAtK(kRanked, kRelevant, 2), kInvLog2Of3 / (1.0 + kInvLog2Of3), kEps);
  // k=1: no hit in [5].
  EXPECT_DOUBLE_EQ(NdcgAtK(kRanked, kRelevant, 1), 0.0);
}

TEST(MetricsNdcg, KLargerThanListKeepsIdealOverRelevant) {
  // k=10 with 3 entries: DCG as for k=3; IDCG over min(10, 2) = 2 ranks.
  EXPECT_NEAR(NdcgAtK(kRanked, kRelevant, 10), (kInvLog2Of3 + 0.5) / (1.0 + kInvLog2Of3), kEps);
}

TEST(MetricsNdcg, MoreRelevantThanKIsStillPerfect) {
  // [1,2] against {1,2,3} at k=2: DCG = 1 + 1/log2(3) = IDCG over min(2, 3) = 2 ranks.
  EXPECT_NEAR(NdcgAtK(Ids{1, 2}, Ids{1, 2, 3}, 2), 1.0, kEps);
  // [7,1] against {1,2,3} at k=2: DCG = 1/log2(3); IDCG = 1 + 1/log2(3).
  EXPECT_NEAR(NdcgAtK(Ids{7, 1}, Ids{1, 2, 3}, 2), kInvLog2Of3 / (1.0 + kInvLog2Of3), kEps);
}

TEST(MetricsAveragePrecision, HandComputed) {
  // Hits at rank 2 (precision@2 = 1/2) and rank 3 (precision@3 = 2/3); / min(3, 2) = 2:
  // (1/2 + 2/3) / 2 = 7/12.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(kRanked, kRelevant, 3), 7.0 / 12);
  // k=2: (1/2) / min(2, 2) = 1/4.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(kRanked, kRelevant, 2), 1.0 / 4);
  // [1,7,2,8] against {1,2,3} at k=4: hits at 1 (1/1) and 3 (2/3); / min(4, 3) = 3:
  // (1 + 2/3) / 3 = 5/9.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(Ids{1, 7, 2, 8}, Ids{1, 2, 3}, 4), 5.0 / 9);
  // Same list at k=2: hit at 1 (1/1); / min(2, 3) = 2: 1/2.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(Ids{1, 7, 2, 8}, Ids{1, 2, 3}, 2), 1.0 / 2);
}

TEST(MetricsAveragePrecision, KLargerThanList) {
  // k=10 over [5,3,9]: same hits as k=3; / min(10, 2) = 2: 7/12.
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(kRanked, kRelevant, 10), 7.0 / 12);
}

TEST(MetricsHitRate, HandComputed) {
  EXPECT_DOUBLE_EQ(HitRateAtK(kRanked, kRelevant, 1), 0.0);  // [5]
  EXPECT_DOUBLE_EQ(HitRateAtK(kRanked, kRelevant, 2), 1.0);  // [5,3]
  EXPECT_DOUBLE_EQ(HitRateAtK(kRanked, kRelevant, 50), 1.0);
}

TEST(MetricsAll, AllHitsArePerfect) {
  const Ids ranked = {3, 9};
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, kRelevant, 2), 1.0);
  EXPECT_DOUBLE_EQ(RecallAtK(ranked, kRelevant, 2), 1.0);
  EXPECT_NEAR(NdcgAtK(ranked, kRelevant, 2), 1.0, kEps);
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(ranked, kRelevant, 2), 1.0);
  EXPECT_DOUBLE_EQ(HitRateAtK(ranked, kRelevant, 2), 1.0);
}

TEST(MetricsAll, NoHitsAreZero) {
  const Ids ranked = {1, 2, 4};
  EXPECT_DOUBLE_EQ(PrecisionAtK(ranked, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(RecallAtK(ranked, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(NdcgAtK(ranked, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(ranked, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(HitRateAtK(ranked, kRelevant, 3), 0.0);
}

TEST(MetricsAll, EmptyRelevantIsZero) {
  const Ids none;
  EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, none, 3), 0.0);
  EXPECT_DOUBLE_EQ(RecallAtK(kRanked, none, 3), 0.0);
  EXPECT_DOUBLE_EQ(NdcgAtK(kRanked, none, 3), 0.0);
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(kRanked, none, 3), 0.0);
  EXPECT_DOUBLE_EQ(HitRateAtK(kRanked, none, 3), 0.0);
}

TEST(MetricsAll, EmptyListIsZero) {
  const Ids none;
  EXPECT_DOUBLE_EQ(PrecisionAtK(none, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(RecallAtK(none, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(NdcgAtK(none, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(AveragePrecisionAtK(none, kRelevant, 3), 0.0);
  EXPECT_DOUBLE_EQ(HitRateAtK(none, kRelevant, 3), 0.0);
}

TEST(MetricsAll, NonPositiveKIsZero) {
  for (const int k : {0, -1}) {
    EXPECT_DOUBLE_EQ(PrecisionAtK(kRanked, kRelevant, k), 0.0) << k;
    EXPECT_DOUBLE_EQ(RecallAtK(kRanked, kRelevant, k), 0.0) << k;
    EXPECT_DOUBLE_EQ(NdcgAtK(kRanked, kRelevant, k), 0.0) << k;
    EXPECT_DOUBLE_EQ(AveragePrecisionAtK(kRanked, kRelevant, k), 0.0) << k;
    EXPECT_DOUBLE_EQ(HitRateAtK(kRanked, kRelevant, k), 0.0) << k;
  }
}

TEST(MetricsAuc, PerfectIsOneAndReversedIsZero) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f, 0.2f};
  // Relevant {0,2} (0.9, 0.8) above both others (0.1, 0.2): 4 of 4 pairs.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0, 2}, {}), 1.0);
  // Relevant {1,3} (0.1, 0.2) below both others: 0 of 4 pairs.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{1, 3}, {}), 0.0);
}

TEST(MetricsAuc, MixedPairs) {
  // Scores [0.3, 0.7, 0.7, 0.1, 0.5], relevant {1, 3}, negatives {0, 2, 4}.
  // Item 1 (0.7): > 0.3 (1), = 0.7 (1/2), > 0.5 (1) -> 2.5. Item 3 (0.1): below all -> 0.
  // 2.5 / (2 * 3) = 5/12.
  const std::vector<float> scores = {0.3f, 0.7f, 0.7f, 0.1f, 0.5f};
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{1, 3}, {}), 5.0 / 12);
}

TEST(MetricsAuc, TiesCountOneHalf) {
  // Relevant {0} at 0.5 vs 0.5 (1/2), 0.5 (1/2), 0.1 (1): 2 / 3.
  const std::vector<float> scores = {0.5f, 0.5f, 0.5f, 0.1f};
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0}, {}), 2.0 / 3);
  // All scores equal: every pair is a tie.
  const std::vector<float> flat(6, 1.0f);
  EXPECT_DOUBLE_EQ(Auc(flat, Ids{1, 4}, {}), 0.5);
}

TEST(MetricsAuc, ExcludedItemsAreNeitherSide) {
  // Scores [0.9, 0.95, 0.1, 0.5], relevant {0}.
  const std::vector<float> scores = {0.9f, 0.95f, 0.1f, 0.5f};
  // Without exclusions: 0.9 beats 0.1 and 0.5, loses to 0.95: 2 / 3.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0}, {}), 2.0 / 3);
  // Excluding item 1 (0.95) leaves negatives {2, 3}: 2 / 2.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0}, Ids{1}), 1.0);
  // An item both relevant and excluded is excluded: relevant {0, 1} with 1 excluded is as above.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0, 1}, Ids{1}), 1.0);
  // Excluding the relevant item leaves no positive.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0}, Ids{0}), 0.5);
}

TEST(MetricsAuc, DegenerateCasesAreOneHalf) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f};
  EXPECT_DOUBLE_EQ(Auc(scores, {}, {}), 0.5);                // no relevant item
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0, 1, 2}, {}), 0.5);      // no irrelevant item
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0, 1}, Ids{2}), 0.5);     // irrelevant one excluded
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{}, {}, {}), 0.5);  // no items at all
}

TEST(MetricsAuc, NanScoresRankLowest) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const std::vector<float> scores = {nan, 0.2f, nan, neg_inf};
  // Relevant {0} (NaN) vs 0.2 (0), NaN (tie, 1/2), -inf (-inf is above NaN: 0): 0.5 / 3.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0}, {}), 0.5 / 3);
  // Relevant {3} (-inf) vs NaN (1), 0.2 (0), NaN (1): 2 / 3.
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{3}, {}), 2.0 / 3);
}

TEST(MetricsAuc, IgnoresDuplicateAndOutOfRangeRelevant) {
  const std::vector<float> scores = {0.9f, 0.1f, 0.8f, 0.2f};
  EXPECT_DOUBLE_EQ(Auc(scores, Ids{0, 0, 2, 7}, {}), 1.0);
}

// The pair-counting definition, O(P * N), as an independent check of the fast computation.
double BruteForceAuc(const std::vector<float>& scores, const Ids& relevant, const Ids& excluded) {
  auto contains = [](const Ids& v, int32_t x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  double correct = 0;
  int64_t pairs = 0;
  for (int32_t p = 0; p < static_cast<int32_t>(scores.size()); ++p) {
    if (!contains(relevant, p) || contains(excluded, p)) continue;
    for (int32_t q = 0; q < static_cast<int32_t>(scores.size()); ++q) {
      if (contains(relevant, q) || contains(excluded, q)) continue;
      ++pairs;
      if (scores[p] > scores[q]) correct += 1;
      if (scores[p] == scores[q]) correct += 0.5;
    }
  }
  return pairs == 0 ? 0.5 : correct / static_cast<double>(pairs);
}

TEST(MetricsAuc, MatchesPairCountingOnRandomScoresWithTies) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 5);  // few distinct scores: many ties
  std::bernoulli_distribution coin(0.2);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> scores(40);
    for (float& s : scores) s = static_cast<float>(level(rng)) * 0.25f;
    Ids relevant, excluded;
    for (int32_t i = 0; i < 40; ++i) {
      if (coin(rng)) relevant.push_back(i);
      if (coin(rng)) excluded.push_back(i);
    }
    EXPECT_NEAR(Auc(scores, relevant, excluded), BruteForceAuc(scores, relevant, excluded), kEps)
        << "trial " << trial;
  }
}

}  // namespace
}  // namespace recloop
