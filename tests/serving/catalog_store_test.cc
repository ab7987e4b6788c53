#include "serving/catalog_store.h"

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

TEST(CatalogStore, PutAllIsDurableAndPutReplaces) {
  test::TempDir dir;
  const std::string path = dir.File("catalog.db");
  CatalogMap entries;
  for (int i = 0; i < 500; ++i) {
    entries["i" + std::to_string(i)] = {{"cluster-" + std::to_string(i % 7)}, i % 3 != 0};
  }
  {
    ASSERT_OK_AND_ASSIGN(auto store, CatalogStore::Open(path));
    ASSERT_OK(store->PutAll(entries));
    const CatalogEntry changed{{"a", "b \"quoted\""}, false};
    ASSERT_OK(store->Put("i5", changed));
    entries["i5"] = changed;
  }
  ASSERT_OK_AND_ASSIGN(auto reopened, CatalogStore::Open(path));
  ASSERT_OK_AND_ASSIGN(const CatalogMap loaded, reopened->LoadAll());
  EXPECT_EQ(loaded, entries);
}

TEST(CatalogStore, UnusableFileIsAnErrorNamingIt) {
  test::TempDir dir;
  const std::string path = dir.File("not-a-db");
  std::ofstream(path) << "this is not an SQLite database, just text that is long enough to be "
                         "read as a header of one hundred bytes or more, which it is now.\n";
  const auto store = CatalogStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(path), std::string::npos) << store.status();
}

}  // namespace
}  // namespace recloop
