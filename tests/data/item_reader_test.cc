#include "data/item_reader.h"

#include <fstream>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

std::string Flags(std::initializer_list<int> on) {
  std::string out;
  for (int g = 0; g < 19; ++g) {
    out += "|";
    out += std::find(on.begin(), on.end(), g) != on.end() ? "1" : "0";
  }
  return out;
}

TEST(ReadMovieLensItems, TitlesGenresAndLatin1) {
  test::TempDir dir;
  const std::string path = dir.File("u.item");
  std::ofstream(path, std::ios::binary)
      << "1|Toy Story (1995)|01-Jan-1995||http://x" << Flags({3, 4, 5}) << "\n"
      << "\n"  // blank lines are skipped
      << "543|Mis\xe9rables, Les (1995)|01-Jan-1995||http://y" << Flags({8, 12}) << "\r\n"
      << "7|Caf\xc3\xa9 (already UTF-8)|||" << Flags({}) << "\n";
  ASSERT_OK_AND_ASSIGN(const auto items, ReadMovieLensItems(path));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].item, "1");
  EXPECT_EQ(items[0].title, "Toy Story (1995)");
  EXPECT_EQ(items[0].categories, (std::vector<std::string>{"Animation", "Children's", "Comedy"}));
  EXPECT_EQ(items[1].item, "543");
  EXPECT_EQ(items[1].title, "Mis\xc3\xa9rables, Les (1995)");
  EXPECT_EQ(items[1].categories, (std::vector<std::string>{"Drama", "Musical"}));
  EXPECT_EQ(items[2].title, "Caf\xc3\xa9 (already UTF-8)");
  EXPECT_TRUE(items[2].categories.empty());
}

TEST(ReadMovieLensItems, MalformedLinesNameFileAndLine) {
  test::TempDir dir;
  const std::string path = dir.File("u.item");
  const std::string good = "1|A|||" + Flags({1});
  struct Case {
    std::string bad_line;
    std::string expected;
  };
  for (const Case& c : {Case{"2|B|||", "expected 24"}, Case{" |B|||" + Flags({}), "empty item ID"},
                        Case{"2|B|||" + Flags({}).substr(0, 36) + "|2", "must be 0 or 1"}}) {
    std::ofstream(path, std::ios::binary) << good << "\n" << c.bad_line << "\n";
    const auto items = ReadMovieLensItems(path);
    ASSERT_FALSE(items.ok()) << c.bad_line;
    EXPECT_NE(items.status().message().find(path + ":2: "), std::string::npos) << items.status();
    EXPECT_NE(items.status().message().find(c.expected), std::string::npos) << items.status();
  }
  EXPECT_FALSE(ReadMovieLensItems(dir.File("missing")).ok());
  std::ofstream(path, std::ios::binary) << "\n";
  EXPECT_FALSE(ReadMovieLensItems(path).ok());  // no items
}

}  // namespace
}  // namespace recloop
