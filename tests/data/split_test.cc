// Tests for data/split.h: spec parsing, the four split kinds, and the properties every split
// must keep (a partition of the input, row order, ID maps, determinism).
#include "data/split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "data/generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tbb/global_control.h"
#include "test_util.h"

namespace recloop {
namespace {

using ::testing::HasSubstr;
using Kind = SplitSpec::Kind;

// (user, item) by external ID: train is compacted, so indices cannot be compared across outputs.
using Pair = std::pair<std::string, std::string>;

Pair PairAt(const Interactions& d, int64_t k) {
  return {d.users.External(d.user[k]), d.items.External(d.item[k])};
}

// A store large enough for the size checks to mean something, small enough to be quick.
Interactions Generated(bool timestamps = true) {
  GeneratorOptions o;
  o.users = 300;
  o.items = 200;
  o.interactions = 6000;
  o.clusters = 5;
  o.seed = 7;
  auto store = GenerateStore(o);
  EXPECT_TRUE(store.ok()) << store.status();
  Interactions d = std::move(store->data);
  d.has_timestamps = timestamps;
  return d;
}

// Rows in the order given; has_timestamps on.
Interactions FromRows(const std::vector<std::tuple<std::string, std::string, int64_t>>& rows) {
  Interactions d;
  d.has_timestamps = true;
  for (const auto& [u, i, ts] : rows) d.Add(d.users.GetOrAdd(u), d.items.GetOrAdd(i), 1.0f, ts);
  return d;
}

SplitSpec Spec(Kind kind, double fraction, int count = 1) {
  SplitSpec s;
  s.kind = kind;
  s.fraction = fraction;
  s.count = count;
  return s;
}

// Per user external ID: how many rows of `d` it has.
std::map<std::string, int64_t> CountsByUser(const Interactions& d) {
  std::map<std::string, int64_t> counts;
  for (int64_t k = 0; k < d.size(); ++k) ++counts[d.users.External(d.user[k])];
  return counts;
}

// Checks that train and test partition `data` (by (user, item), which is unique in the input),
// that each keeps the input's row order and the values and timestamps of its rows, that train is
// compacted and that test keeps the input's ID maps.
void ExpectPartition(const Interactions& data, const SplitResult& r) {
  std::map<Pair, int64_t> row_of;
  for (int64_t k = 0; k < data.size(); ++k) row_of[PairAt(data, k)] = k;
  ASSERT_EQ(row_of.size(), static_cast<size_t>(data.size())) << "input has duplicates";
  EXPECT_EQ(r.train.size() + r.test.size(), data.size());

  std::set<int64_t> seen;
  for (const Interactions* part : {&r.train, &r.test}) {
    int64_t previous = -1;
    for (int64_t k = 0; k < part->size(); ++k) {
      const auto it = row_of.find(PairAt(*part, k));
      ASSERT_NE(it, row_of.end()) << "row not in the input";
      const int64_t row = it->second;
      EXPECT_TRUE(seen.insert(row).second) << "row " << row << " in both outputs";
      EXPECT_GT(row, previous) << "row order not kept";
      previous = row;
      EXPECT_EQ(part->value[k], data.value[row]);
      EXPECT_EQ(part->timestamp[k], data.timestamp[row]);
    }
    EXPECT_EQ(part->has_timestamps, data.has_timestamps);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(data.size()));

  // Compacted: every user and item of train's maps is used, in order of first use.
  std::set<int32_t> train_users(r.train.user.begin(), r.train.user.end());
  std::set<int32_t> train_items(r.train.item.begin(), r.train.item.end());
  EXPECT_EQ(static_cast<size_t>(r.train.users.size()), train_users.size());
  EXPECT_EQ(static_cast<size_t>(r.train.items.size()), train_items.size());
  EXPECT_EQ(r.test.users.externals(), data.users.externals());
  EXPECT_EQ(r.test.items.externals(), data.items.externals());
}

void ExpectSameSplit(const SplitResult& a, const SplitResult& b) {
  EXPECT_EQ(a.train.user, b.train.user);
  EXPECT_EQ(a.train.item, b.train.item);
  EXPECT_EQ(a.train.users.externals(), b.train.users.externals());
  EXPECT_EQ(a.train.items.externals(), b.train.items.externals());
  EXPECT_EQ(a.test.user, b.test.user);
  EXPECT_EQ(a.test.item, b.test.item);
}

TEST(SplitSpecTest, ParsesEachKind) {
  ASSERT_OK_AND_ASSIGN(SplitSpec random, ParseSplitSpec("random:0.2"));
  EXPECT_EQ(random.kind, Kind::kRandom);
  EXPECT_DOUBLE_EQ(random.fraction, 0.2);
  ASSERT_OK_AND_ASSIGN(SplitSpec user, ParseSplitSpec("user:0.5"));
  EXPECT_EQ(user.kind, Kind::kUser);
  EXPECT_DOUBLE_EQ(user.fraction, 0.5);
  ASSERT_OK_AND_ASSIGN(SplitSpec last, ParseSplitSpec("user-last:3"));
  EXPECT_EQ(last.kind, Kind::kUserLast);
  EXPECT_EQ(last.count, 3);
  ASSERT_OK_AND_ASSIGN(SplitSpec time, ParseSplitSpec("time:0.05"));
  EXPECT_EQ(time.kind, Kind::kTime);
  EXPECT_DOUBLE_EQ(time.fraction, 0.05);
}

TEST(SplitSpecTest, RejectsBadSpecsNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "missing ':'"},
      {"random", "missing ':'"},
      {"random:", "missing value"},
      {"random:0", "(0, 1)"},
      {"random:1", "(0, 1)"},
      {"random:1.5", "(0, 1)"},
      {"random:-0.2", "(0, 1)"},
      {"random:nan", "(0, 1)"},
      {"random:abc", "must be a number"},
      {"user:0.2x", "must be a number"},
      {"time: 0.2", "must be a number"},
      {"user-last:0", ">= 1"},
      {"user-last:-2", ">= 1"},
      {"user-last:1.5", "integer"},
      {"user-last:two", "integer"},
      {"user-last:99999999999", "integer"},
      {"bogus:0.2", "unknown kind 'bogus'"},
      {"Random:0.2", "unknown kind"},
  };
  for (const auto& [spec, why] : cases) {
    SCOPED_TRACE(spec);
    const auto parsed = ParseSplitSpec(spec);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("'" + spec + "'"));
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(why));
  }
}

TEST(SplitTest, RandomTakesTheRoundedFraction) {
  const Interactions data = Generated();
  for (double f : {0.1, 0.25, 0.5, 0.9}) {
    SCOPED_TRACE(f);
    ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kRandom, f), 1));
    EXPECT_EQ(r.test.size(), std::llround(f * data.size()));
    ExpectPartition(data, r);
  }
}

TEST(SplitTest, RandomRoundsHalfUp) {
  const Interactions data = FromRows({{"a", "x", 1}, {"a", "y", 2}, {"b", "x", 3}});
  ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kRandom, 0.5), 1));
  EXPECT_EQ(r.test.size(), 2);  // round(1.5)
  ExpectPartition(data, r);
}

TEST(SplitTest, RandomWorksWithoutTimestamps) {
  const Interactions data = Generated(/*timestamps=*/false);
  ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kRandom, 0.2), 1));
  ExpectPartition(data, r);
}

TEST(SplitTest, UserTakesTheFractionOfEachUser) {
  const Interactions data = Generated();
  const auto in = CountsByUser(data);
  for (double f : {0.2, 0.5, 0.8}) {
    SCOPED_TRACE(f);
    ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kUser, f), 3));
    ExpectPartition(data, r);
    const auto test = CountsByUser(r.test);
    for (const auto& [user, n] : in) {
      const int64_t expected = n < 2 ? 0 : std::clamp<int64_t>(std::llround(f * n), 1, n - 1);
      const auto it = test.find(user);
      EXPECT_EQ(it == test.end() ? 0 : it->second, expected) << user << " with " << n;
    }
    // Every user is still in train.
    EXPECT_EQ(r.train.users.size(), data.users.size());
  }
}

TEST(SplitTest, UserKeepsSingletonsInTrainAndGivesAtLeastOne) {
  const Interactions data = FromRows({{"one", "x", 1},
                                      {"two", "x", 1},
                                      {"two", "y", 2},
                                      {"many", "x", 1},
                                      {"many", "y", 2},
                                      {"many", "z", 3}});
  // 0.9 of one interaction rounds to 1, but a lone interaction stays in train; 0.01 of two
  // rounds to 0, but a user with two gives one.
  ASSERT_OK_AND_ASSIGN(SplitResult high, Split(data, Spec(Kind::kUser, 0.9), 1));
  EXPECT_EQ(CountsByUser(high.test), (std::map<std::string, int64_t>{{"many", 2}, {"two", 1}}));
  ASSERT_OK_AND_ASSIGN(SplitResult low, Split(data, Spec(Kind::kUser, 0.01), 1));
  EXPECT_EQ(CountsByUser(low.test), (std::map<std::string, int64_t>{{"many", 1}, {"two", 1}}));
  ExpectPartition(data, high);
  ExpectPartition(data, low);
}

TEST(SplitTest, UserLastTakesTheLatestOfEachUser) {
  const Interactions data = Generated();
  const auto in = CountsByUser(data);
  for (int n_last : {1, 3}) {
    SCOPED_TRACE(n_last);
    ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kUserLast, 0.2, n_last), 1));
    ExpectPartition(data, r);
    const auto test = CountsByUser(r.test);
    for (const auto& [user, n] : in) {
      const int64_t expected = n > n_last ? n_last : n - 1;
      const auto it = test.find(user);
      EXPECT_EQ(it == test.end() ? 0 : it->second, expected) << user << " with " << n;
    }
    // Per user, every test interaction is at least as late as every train interaction.
    std::map<std::string, int64_t> latest_train, earliest_test;
    for (int64_t k = 0; k < r.train.size(); ++k) {
      int64_t& t = latest_train[r.train.users.External(r.train.user[k])];
      t = std::max(t, r.train.timestamp[k]);
    }
    for (int64_t k = 0; k < r.test.size(); ++k) {
      const std::string& user = r.test.users.External(r.test.user[k]);
      auto [it, inserted] = earliest_test.emplace(user, r.test.timestamp[k]);
      if (!inserted) it->second = std::min(it->second, r.test.timestamp[k]);
    }
    for (const auto& [user, t] : earliest_test) EXPECT_GE(t, latest_train.at(user)) << user;
  }
}

TEST(SplitTest, UserLastBreaksTimestampTiesByRowOrder) {
  // The latest of a's rows by timestamp are rows 1 and 2 (tie at 9): the later row wins.
  const Interactions data = FromRows({{"a", "w", 1}, {"a", "x", 9}, {"a", "y", 9}, {"a", "z", 5}});
  ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kUserLast, 0.2, 1), 1));
  ASSERT_EQ(r.test.size(), 1);
  EXPECT_EQ(PairAt(r.test, 0), Pair("a", "y"));
  ASSERT_OK_AND_ASSIGN(SplitResult two, Split(data, Spec(Kind::kUserLast, 0.2, 2), 1));
  ASSERT_EQ(two.test.size(), 2);
  EXPECT_EQ(PairAt(two.test, 0), Pair("a", "x"));
  EXPECT_EQ(PairAt(two.test, 1), Pair("a", "y"));
}

TEST(SplitTest, TimeTakesTheLatestFraction) {
  const Interactions data = Generated();
  for (double f : {0.1, 0.3}) {
    SCOPED_TRACE(f);
    ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kTime, f), 1));
    ExpectPartition(data, r);
    EXPECT_EQ(r.test.size(), std::llround(f * data.size()));
    const int64_t latest_train =
        *std::max_element(r.train.timestamp.begin(), r.train.timestamp.end());
    const int64_t earliest_test =
        *std::min_element(r.test.timestamp.begin(), r.test.timestamp.end());
    EXPECT_GE(earliest_test, latest_train);
  }
}

TEST(SplitTest, TimeBreaksTimestampTiesByRowOrder) {
  const Interactions data =
      FromRows({{"a", "x", 5}, {"a", "y", 7}, {"b", "x", 5}, {"b", "y", 5}, {"c", "x", 1}});
  // The two latest by (timestamp, row): (7, row 1) and then (5, row 3).
  ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kTime, 0.4), 1));
  ASSERT_EQ(r.test.size(), 2);
  EXPECT_EQ(PairAt(r.test, 0), Pair("a", "y"));
  EXPECT_EQ(PairAt(r.test, 1), Pair("b", "y"));
  ExpectPartition(data, r);
}

TEST(SplitTest, TimeAndUserLastNeedTimestamps) {
  const Interactions data = Generated(/*timestamps=*/false);
  for (const SplitSpec& spec : {Spec(Kind::kTime, 0.2), Spec(Kind::kUserLast, 0.2, 1)}) {
    const auto r = Split(data, spec, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("timestamps"));
  }
}

TEST(SplitTest, RejectsAnInvalidSpecBuiltInCode) {
  const Interactions data = Generated();
  for (const SplitSpec& spec : {Spec(Kind::kRandom, 0.0), Spec(Kind::kUser, 1.0),
                                Spec(Kind::kTime, std::nan("")), Spec(Kind::kUserLast, 0.2, 0)}) {
    const auto r = Split(data, spec, 1);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SplitTest, EmptyInputGivesEmptyOutputs) {
  Interactions data;
  data.has_timestamps = true;
  for (const SplitSpec& spec : {Spec(Kind::kRandom, 0.2), Spec(Kind::kUser, 0.2),
                                Spec(Kind::kUserLast, 0.2, 1), Spec(Kind::kTime, 0.2)}) {
    ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, spec, 1));
    EXPECT_TRUE(r.train.empty());
    EXPECT_TRUE(r.test.empty());
  }
}

TEST(SplitTest, SameSeedSameSplitOtherSeedOtherSplit) {
  const Interactions data = Generated();
  for (const SplitSpec& spec : {Spec(Kind::kRandom, 0.2), Spec(Kind::kUser, 0.2)}) {
    ASSERT_OK_AND_ASSIGN(SplitResult a, Split(data, spec, 11));
    ASSERT_OK_AND_ASSIGN(SplitResult b, Split(data, spec, 11));
    ASSERT_OK_AND_ASSIGN(SplitResult c, Split(data, spec, 12));
    ExpectSameSplit(a, b);
    EXPECT_NE(a.test.item, c.test.item);
  }
}

TEST(SplitTest, SameResultOnOneThread) {
  const Interactions data = Generated();
  ASSERT_OK_AND_ASSIGN(SplitResult many, Split(data, Spec(Kind::kUser, 0.3), 5));
  tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
  ASSERT_OK_AND_ASSIGN(SplitResult single, Split(data, Spec(Kind::kUser, 0.3), 5));
  ExpectSameSplit(many, single);
}

TEST(SplitTest, GroupsUsersEvenIfRowsAreNotSorted) {
  // Rows of a user need not be adjacent; outputs keep the input's (unsorted) row order.
  const Interactions data = FromRows(
      {{"b", "x", 1}, {"a", "x", 2}, {"b", "y", 3}, {"a", "y", 4}, {"b", "z", 5}, {"a", "z", 6}});
  ASSERT_OK_AND_ASSIGN(SplitResult r, Split(data, Spec(Kind::kUserLast, 0.2, 1), 1));
  ASSERT_EQ(r.test.size(), 2);
  EXPECT_EQ(PairAt(r.test, 0), Pair("b", "z"));
  EXPECT_EQ(PairAt(r.test, 1), Pair("a", "z"));
  ExpectPartition(data, r);
}

}  // namespace
}  // namespace recloop
