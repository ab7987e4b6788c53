#include "training/popularity.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

constexpr int64_t kDay = 86400;

// Items a, b, c; t_max = day 10. Counts: a 2, b 3, c 0.
Interactions MakeData() {
  Interactions d;
  for (const char* u : {"u0", "u1", "u2"}) d.users.GetOrAdd(u);
  for (const char* i : {"a", "b", "c"}) d.items.GetOrAdd(i);
  d.Add(0, 0, 5.0f, 10 * kDay);
  d.Add(1, 0, 1.0f, 9 * kDay);
  d.Add(0, 1, 3.0f, 8 * kDay);
  d.Add(1, 1, 4.0f, 10 * kDay);
  d.Add(2, 1, 2.0f, 7 * kDay);
  d.has_timestamps = true;
  return d;
}

TEST(Popularity, DefaultIsPlainCounts) {
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf p, ItemPopularity(MakeData()));
  ASSERT_EQ(p.size(), 3);
  EXPECT_EQ(p[0], 2.0f);
  EXPECT_EQ(p[1], 3.0f);
  EXPECT_EQ(p[2], 0.0f);
}

TEST(Popularity, CountsNeedNoTimestamps) {
  Interactions d = MakeData();
  d.has_timestamps = false;
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf p, ItemPopularity(d));
  EXPECT_EQ(p[1], 3.0f);
}

TEST(Popularity, DecayHalvesTheWeightEveryHalfLife) {
  PopularityOptions o;
  o.half_life_days = 1.0;
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf p, ItemPopularity(MakeData(), o));
  // a: ages 0 and 1 day; b: ages 2, 0 and 3 days. Recency flips the order of a and b.
  EXPECT_FLOAT_EQ(p[0], 1.0f + 0.5f);
  EXPECT_FLOAT_EQ(p[1], 0.25f + 1.0f + 0.125f);
  EXPECT_EQ(p[2], 0.0f);

  o.half_life_days = 2.0;
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf q, ItemPopularity(MakeData(), o));
  EXPECT_FLOAT_EQ(q[0], 1.0f + std::pow(2.0f, -0.5f));
  EXPECT_FLOAT_EQ(q[1], 0.5f + 1.0f + std::pow(2.0f, -1.5f));
}

TEST(Popularity, DecayIsRelativeToTheLatestTimestamp) {
  // Shifting every timestamp leaves decayed scores unchanged.
  Interactions d = MakeData();
  for (int64_t& t : d.timestamp) t += 1000 * kDay;
  PopularityOptions o;
  o.half_life_days = 1.0;
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf p, ItemPopularity(d, o));
  EXPECT_FLOAT_EQ(p[0], 1.5f);
  EXPECT_FLOAT_EQ(p[1], 1.375f);
}

TEST(Popularity, RejectsBadOptionsAndDecayWithoutTimestamps) {
  for (double bad : {-1.0, std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity()}) {
    PopularityOptions o;
    o.half_life_days = bad;
    EXPECT_EQ(ItemPopularity(MakeData(), o).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  Interactions d = MakeData();
  d.has_timestamps = false;
  PopularityOptions o;
  o.half_life_days = 1.0;
  const auto r = ItemPopularity(d, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("timestamps"), std::string::npos) << r.status();
}

TEST(Popularity, EmptyDataScoresZero) {
  Interactions d;
  d.items.GetOrAdd("a");
  d.has_timestamps = true;
  PopularityOptions o;
  o.half_life_days = 1.0;
  ASSERT_OK_AND_ASSIGN(const Eigen::VectorXf p, ItemPopularity(d, o));
  EXPECT_EQ(p, Eigen::VectorXf::Zero(1));
}

TEST(Popularity, TrainPopularKeepsCountsByDefault) {
  const FactorModel m = TrainPopular(MakeData(), FeedbackKind::kExplicit);
  EXPECT_EQ(m.params.algorithm, Algorithm::kPopular);
  ASSERT_EQ(m.item_popularity.size(), 3);
  EXPECT_EQ(m.item_popularity[0], 2.0f);
  EXPECT_EQ(m.item_popularity[1], 3.0f);
  EXPECT_EQ(m.item_popularity[2], 0.0f);
  EXPECT_FLOAT_EQ(m.global_mean, 3.0f);
}

TEST(Popularity, TrainModelUsesTheDecayedScoresForEveryAlgorithm) {
  TrainOptions t;
  t.popularity.half_life_days = 1.0;
  t.algorithm = Algorithm::kPopular;
  ASSERT_OK_AND_ASSIGN(const FactorModel pop, TrainModel(MakeData(), t));
  EXPECT_FLOAT_EQ(pop.item_popularity[0], 1.5f);
  EXPECT_FLOAT_EQ(pop.item_popularity[1], 1.375f);

  t.algorithm = Algorithm::kAls;
  t.als.factors = 2;
  t.als.iterations = 1;
  ASSERT_OK_AND_ASSIGN(const FactorModel als, TrainModel(MakeData(), t));
  EXPECT_FLOAT_EQ(als.item_popularity[0], 1.5f);
  EXPECT_FLOAT_EQ(als.item_popularity[1], 1.375f);

  t.popularity.half_life_days = -1.0;
  EXPECT_EQ(TrainModel(MakeData(), t).status().code(), absl::StatusCode::kInvalidArgument);
  t.algorithm = Algorithm::kPopular;
  EXPECT_EQ(TrainModel(MakeData(), t).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recloop
