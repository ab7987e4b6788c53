// Tests for data/generator.h: option validation, the shape of the generated store (exact size,
// no duplicates, every user present, value ranges), determinism, and that the planted structure
// (popularity skew, taste clusters) is really there.
#include "data/generator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tbb/global_control.h"
#include "test_util.h"

namespace recloop {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Small enough to be quick, large enough for the statistics below to be stable.
GeneratorOptions SmallOptions() {
  GeneratorOptions o;
  o.users = 2000;
  o.items = 1000;
  o.interactions = 40000;
  o.clusters = 10;
  o.seed = 3;
  return o;
}

std::vector<int64_t> CountsPerUser(const GeneratedStore& s) {
  std::vector<int64_t> counts(s.data.users.size(), 0);
  for (int32_t u : s.data.user) ++counts[u];
  return counts;
}

bool InOwnCluster(const GeneratedStore& s, int64_t k) {
  return s.user_cluster[s.data.user[k]] == s.item_cluster[s.data.item[k]];
}

void ExpectSameStore(const GeneratedStore& a, const GeneratedStore& b) {
  EXPECT_EQ(a.data.user, b.data.user);
  EXPECT_EQ(a.data.item, b.data.item);
  EXPECT_EQ(a.data.value, b.data.value);
  EXPECT_EQ(a.data.timestamp, b.data.timestamp);
  EXPECT_EQ(a.user_cluster, b.user_cluster);
  EXPECT_EQ(a.item_cluster, b.item_cluster);
}

// Checks the invariants every generated store has, whatever the options.
void ExpectWellFormed(const GeneratorOptions& o, const GeneratedStore& s) {
  const Interactions& d = s.data;
  ASSERT_EQ(d.size(), o.interactions);
  ASSERT_EQ(d.users.size(), o.users);
  ASSERT_EQ(d.items.size(), o.items);
  EXPECT_EQ(d.users.External(0), "u0");
  EXPECT_EQ(d.users.External(o.users - 1), absl::StrCat("u", o.users - 1));
  EXPECT_EQ(d.items.External(0), "i0");
  EXPECT_EQ(d.items.External(o.items - 1), absl::StrCat("i", o.items - 1));
  EXPECT_TRUE(d.has_timestamps);
  ASSERT_EQ(s.user_cluster.size(), static_cast<size_t>(o.users));
  ASSERT_EQ(s.item_cluster.size(), static_cast<size_t>(o.items));
  ASSERT_EQ(d.item.size(), d.user.size());
  ASSERT_EQ(d.value.size(), d.user.size());
  ASSERT_EQ(d.timestamp.size(), d.user.size());

  // Sorted by (user, item) with no duplicate pair, indices in range.
  for (int64_t k = 0; k < d.size(); ++k) {
    ASSERT_GE(d.user[k], 0);
    ASSERT_LT(d.user[k], o.users);
    ASSERT_GE(d.item[k], 0);
    ASSERT_LT(d.item[k], o.items);
    if (k > 0) {
      ASSERT_TRUE(d.user[k - 1] < d.user[k] ||
                  (d.user[k - 1] == d.user[k] && d.item[k - 1] < d.item[k]))
          << "row " << k << " out of order or a duplicate";
    }
  }
  // Every user at least once, at most ceil(items / 2) times.
  for (int64_t c : CountsPerUser(s)) {
    EXPECT_GE(c, 1);
    EXPECT_LE(c, (o.items + 1) / 2);
  }
  for (int32_t c : s.user_cluster) {
    EXPECT_GE(c, 0);
    EXPECT_LT(c, o.clusters);
  }
  for (int32_t c : s.item_cluster) {
    EXPECT_GE(c, 0);
    EXPECT_LT(c, o.clusters);
  }
  // Values: whole ratings 1..5, or whole counts >= 1.
  for (float v : d.value) {
    EXPECT_EQ(v, std::round(v));
    EXPECT_GE(v, 1.0f);
    if (o.feedback == FeedbackKind::kExplicit) {
      EXPECT_LE(v, 5.0f);
    }
  }
  // A user's timestamps are distinct (they increase along the user's history).
  for (int64_t k = 0, end = 0; k < d.size(); k = end) {
    end = k;
    while (end < d.size() && d.user[end] == d.user[k]) ++end;
    std::set<int64_t> times(d.timestamp.begin() + k, d.timestamp.begin() + end);
    EXPECT_EQ(static_cast<int64_t>(times.size()), end - k) << "user " << d.user[k];
    EXPECT_GT(*times.begin(), 0);
  }
}

TEST(GeneratorTest, DefaultOptionsAreValid) { EXPECT_OK(ValidateGeneratorOptions({})); }

TEST(GeneratorTest, ValidationNamesTheField) {
  const std::vector<std::pair<std::string, std::function<void(GeneratorOptions&)>>> cases = {
      {"users", [](GeneratorOptions& o) { o.users = 0; }},
      {"items", [](GeneratorOptions& o) { o.items = -3; }},
      {"interactions", [](GeneratorOptions& o) { o.interactions = 0; }},
      {"interactions", [](GeneratorOptions& o) { o.interactions = o.users - 1; }},
      {"interactions",
       [](GeneratorOptions& o) { o.interactions = int64_t{o.users} * o.items / 2 + 1; }},
      {"clusters", [](GeneratorOptions& o) { o.clusters = 0; }},
      {"clusters", [](GeneratorOptions& o) { o.clusters = o.items + 1; }},
      {"rank", [](GeneratorOptions& o) { o.rank = 0; }},
      {"zipf_exponent", [](GeneratorOptions& o) { o.zipf_exponent = -0.5; }},
      {"zipf_exponent", [](GeneratorOptions& o) { o.zipf_exponent = std::nan(""); }},
      {"zipf_exponent", [](GeneratorOptions& o) { o.zipf_exponent = kInf; }},
      {"in_cluster", [](GeneratorOptions& o) { o.in_cluster = 1.1; }},
      {"in_cluster", [](GeneratorOptions& o) { o.in_cluster = -0.1; }},
      {"in_cluster", [](GeneratorOptions& o) { o.in_cluster = std::nan(""); }},
      {"noise", [](GeneratorOptions& o) { o.noise = -1; }},
      {"noise", [](GeneratorOptions& o) { o.noise = kInf; }},
  };
  for (const auto& [field, mutate] : cases) {
    SCOPED_TRACE(field);
    GeneratorOptions o = SmallOptions();
    mutate(o);
    const absl::Status s = ValidateGeneratorOptions(o);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr(field));
    // GenerateStore validates too.
    EXPECT_EQ(GenerateStore(o).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(GeneratorTest, ExplicitStoreIsWellFormed) {
  const GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  ExpectWellFormed(o, s);
}

TEST(GeneratorTest, ImplicitStoreIsWellFormed) {
  GeneratorOptions o = SmallOptions();
  o.feedback = FeedbackKind::kImplicit;
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  ExpectWellFormed(o, s);
  // Counts, not flags: some interactions repeat.
  EXPECT_GT(*std::max_element(s.data.value.begin(), s.data.value.end()), 1.0f);
}

TEST(GeneratorTest, FillsTheMostDenseStoreAllowed) {
  // users * items / 2 interactions: every user gets exactly half the catalogue, which exercises
  // every fallback of duplicate avoidance.
  GeneratorOptions o;
  o.users = 40;
  o.items = 30;
  o.interactions = 600;
  o.clusters = 3;
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  ExpectWellFormed(o, s);
  for (int64_t c : CountsPerUser(s)) EXPECT_EQ(c, 15);
}

TEST(GeneratorTest, HandlesTinyAndOddShapes) {
  struct Shape {
    int32_t users, items;
    int64_t interactions;
    int clusters, rank;
  };
  for (const Shape& shape :
       {Shape{1, 2, 1, 1, 1}, Shape{3, 1, 1, 1, 1}, Shape{2, 2, 2, 2, 1}, Shape{4, 3, 6, 3, 2},
        Shape{5, 7, 5, 7, 1}, Shape{50, 9, 200, 2, 16}}) {
    GeneratorOptions o;
    o.users = shape.users;
    o.items = shape.items;
    o.interactions = shape.interactions;
    o.clusters = shape.clusters;
    o.rank = shape.rank;
    SCOPED_TRACE(testing::Message() << o.users << "x" << o.items << " " << o.interactions);
    const auto s = GenerateStore(o);
    if (o.interactions < o.users) {  // 3 users, 1 interaction: someone would have none
      EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ASSERT_OK(s);
    ExpectWellFormed(o, *s);
  }
}

TEST(GeneratorTest, SurvivesASteepPopularityLaw) {
  // Weights 1 / rank^400 underflow to 0 beyond the first few items, so most clusters have no
  // popularity mass at all; draws must still work, without duplicates.
  GeneratorOptions o = SmallOptions();
  o.zipf_exponent = 400;
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  ExpectWellFormed(o, s);
}

TEST(GeneratorTest, InteractionsPerUserVary) {
  const GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  std::vector<int64_t> counts = CountsPerUser(s);
  std::sort(counts.begin(), counts.end());
  const double mean = static_cast<double>(o.interactions) / o.users;
  // A heavy-ish tail: the busiest users do several times the average, the median less than it.
  EXPECT_GT(static_cast<double>(counts.back()), 4 * mean);
  EXPECT_LT(static_cast<double>(counts[counts.size() / 2]), mean);
}

TEST(GeneratorTest, SameSeedSameStoreOtherSeedOtherStore) {
  GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore a, GenerateStore(o));
  ASSERT_OK_AND_ASSIGN(GeneratedStore b, GenerateStore(o));
  ExpectSameStore(a, b);
  o.seed += 1;
  ASSERT_OK_AND_ASSIGN(GeneratedStore c, GenerateStore(o));
  EXPECT_NE(a.data.item, c.data.item);
  EXPECT_NE(a.user_cluster, c.user_cluster);
  EXPECT_NE(a.item_cluster, c.item_cluster);
}

TEST(GeneratorTest, SameStoreOnOneThread) {
  const GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore many, GenerateStore(o));
  tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
  ASSERT_OK_AND_ASSIGN(GeneratedStore single, GenerateStore(o));
  ExpectSameStore(many, single);
}

// Share of all interactions held by the most popular tenth of the items.
double TopTenthShare(const GeneratedStore& s) {
  std::vector<int64_t> per_item(s.data.items.size(), 0);
  for (int32_t i : s.data.item) ++per_item[i];
  std::sort(per_item.rbegin(), per_item.rend());
  const int64_t top =
      std::accumulate(per_item.begin(), per_item.begin() + per_item.size() / 10, int64_t{0});
  return static_cast<double>(top) / static_cast<double>(s.data.size());
}

TEST(GeneratorTest, PopularityIsSkewed) {
  GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore zipf, GenerateStore(o));
  // Zipf with s = 1 over 1000 items puts about 39% of the mass on the top 100.
  EXPECT_GT(TopTenthShare(zipf), 0.3);
  o.zipf_exponent = 0.0;
  ASSERT_OK_AND_ASSIGN(GeneratedStore flat, GenerateStore(o));
  EXPECT_LT(TopTenthShare(flat), 0.15);
}

TEST(GeneratorTest, ClustersAreBalancedOverItems) {
  const GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  std::vector<int64_t> items_in(o.clusters, 0), users_in(o.clusters, 0);
  for (int32_t c : s.item_cluster) ++items_in[c];
  for (int32_t c : s.user_cluster) ++users_in[c];
  for (int c = 0; c < o.clusters; ++c) {
    EXPECT_EQ(items_in[c], o.items / o.clusters) << c;
    // Users pick a cluster at random: about 200 each.
    EXPECT_GT(users_in[c], 100) << c;
  }
}

// Fraction of interactions whose item is in the user's own cluster.
double InClusterFraction(const GeneratedStore& s) {
  int64_t in = 0;
  for (int64_t k = 0; k < s.data.size(); ++k) in += InOwnCluster(s, k);
  return static_cast<double>(in) / static_cast<double>(s.data.size());
}

TEST(GeneratorTest, InteractionsFollowThePlantedClusters) {
  GeneratorOptions o = SmallOptions();
  for (double p : {0.0, 0.5, 0.8, 1.0}) {
    SCOPED_TRACE(p);
    o.in_cluster = p;
    ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
    // A draw from all items lands in the user's cluster about 1 / clusters of the time; the
    // busiest users exhaust their cluster and spill a little over, hence the tolerance.
    const double expected = p + (1 - p) / o.clusters;
    EXPECT_NEAR(InClusterFraction(s), expected, 0.05);
  }
}

TEST(GeneratorTest, RatingsAreHigherInTheUsersCluster) {
  const GeneratorOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  double sum[2] = {0, 0};
  int64_t n[2] = {0, 0};
  std::vector<int64_t> histogram(6, 0);
  for (int64_t k = 0; k < s.data.size(); ++k) {
    const int in = InOwnCluster(s, k) ? 1 : 0;
    sum[in] += s.data.value[k];
    ++n[in];
    ++histogram[static_cast<int>(s.data.value[k])];
  }
  ASSERT_GT(n[0], 0);
  ASSERT_GT(n[1], 0);
  EXPECT_GT(sum[1] / n[1], sum[0] / n[0] + 0.5);
  // Every rating occurs: the scale is used, not just its top.
  for (int r = 1; r <= 5; ++r) EXPECT_GT(histogram[r], 0) << r;
}

TEST(GeneratorTest, ImplicitCountsAreHigherInTheUsersCluster) {
  GeneratorOptions o = SmallOptions();
  o.feedback = FeedbackKind::kImplicit;
  ASSERT_OK_AND_ASSIGN(GeneratedStore s, GenerateStore(o));
  double sum[2] = {0, 0};
  int64_t n[2] = {0, 0};
  for (int64_t k = 0; k < s.data.size(); ++k) {
    const int in = InOwnCluster(s, k) ? 1 : 0;
    sum[in] += s.data.value[k];
    ++n[in];
  }
  EXPECT_GT(sum[1] / n[1], sum[0] / n[0] + 0.5);
}

}  // namespace
}  // namespace recloop
