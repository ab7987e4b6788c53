#include "engine/id_map.h"

#include "gtest/gtest.h"

namespace recloop {
namespace {

TEST(IdMap, AssignsDenseIndicesInFirstInsertionOrder) {
  IdMap m;
  EXPECT_EQ(m.GetOrAdd("b"), 0);
  EXPECT_EQ(m.GetOrAdd("a"), 1);
  EXPECT_EQ(m.GetOrAdd("b"), 0);
  EXPECT_EQ(m.GetOrAdd("user@example.com"), 2);
  EXPECT_EQ(m.size(), 3);
  EXPECT_EQ(m.External(1), "a");
  EXPECT_EQ(m.Find("user@example.com"), 2);
  EXPECT_EQ(m.Find("missing"), std::nullopt);
}

TEST(IdMap, FromExternalsRoundTrips) {
  IdMap m = IdMap::FromExternals({"x", "y", "z"});
  EXPECT_EQ(m.size(), 3);
  EXPECT_EQ(m.Find("z"), 2);
  EXPECT_EQ(m.externals(), (std::vector<std::string>{"x", "y", "z"}));
}

TEST(IdMap, CopiesAreIndependent) {
  IdMap a;
  a.GetOrAdd("one");
  IdMap b = a;
  b.GetOrAdd("two");
  EXPECT_EQ(a.size(), 1);
  EXPECT_EQ(a.Find("two"), std::nullopt);
  EXPECT_EQ(b.Find("one"), 0);
}

}  // namespace
}  // namespace recloop
