#include "serving/catalog_store.h"

#include <sqlite3.h>

#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

TEST(CatalogStore, PutAllIsDurableAndPutReplaces) {
  test::TempDir dir;
  const std::string path = dir.File("catalog.db");
  CatalogMap entries;
  for (int i = 0; i < 500; ++i) {
    entries["i" + std::to_string(i)] = {
        {"cluster-" + std::to_string(i % 7)},
        i % 3 != 0,
        i % 2 == 0 ? "Caf\u00e9 \"No. " + std::to_string(i) + "\"" : ""};
  }
  {
    ASSERT_OK_AND_ASSIGN(auto store, CatalogStore::Open(path));
    ASSERT_OK(store->PutAll(entries));
    const CatalogEntry changed{{"a", "b \"quoted\""}, false, ""};
    ASSERT_OK(store->Put("i5", changed));
    entries["i5"] = changed;
  }
  ASSERT_OK_AND_ASSIGN(auto reopened, CatalogStore::Open(path));
  ASSERT_OK_AND_ASSIGN(const CatalogMap loaded, reopened->LoadAll());
  EXPECT_EQ(loaded, entries);
}

// A catalogue written before entries had titles opens, keeps its rows, and takes titles.
TEST(CatalogStore, CatalogueWithoutTitlesGainsThem) {
  test::TempDir dir;
  const std::string path = dir.File("catalog.db");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE items (item TEXT PRIMARY KEY NOT NULL, categories TEXT "
                           "NOT NULL, available INTEGER NOT NULL);"
                           "INSERT INTO items VALUES('old', '[\"c1\"]', 0);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  ASSERT_OK_AND_ASSIGN(auto store, CatalogStore::Open(path));
  ASSERT_OK(store->Put("new", CatalogEntry{{"c2"}, true, "A title"}));
  ASSERT_OK_AND_ASSIGN(const CatalogMap loaded, store->LoadAll());
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded.at("old"), (CatalogEntry{{"c1"}, false, ""}));
  EXPECT_EQ(loaded.at("new"), (CatalogEntry{{"c2"}, true, "A title"}));
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
