// The list response is written straight into the body (serving/json_codec.cc ListWriter), not
// through a DOM: its text must be what nlohmann's DOM would have written, hostile strings
// included.
#include "serving/json_codec.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

using ojson = nlohmann::ordered_json;

std::string Reference(const ItemList& list) {
  ojson items = ojson::array();
  for (const ListedItem& r : list.items) {
    ojson item = {{"item", r.item}, {"score", r.score}, {"source", r.source}};
    if (list.details) {
      item["title"] = r.title;
      item["categories"] = r.categories;
    }
    if (list.predicted_rating) {
      item["predicted_rating"] = r.predicted_rating && std::isfinite(*r.predicted_rating)
                                     ? ojson(*r.predicted_rating)
                                     : ojson(nullptr);
    }
    if (r.explanation) {
      item["vector"] = r.explanation->vector;
      ojson because = ojson::array();
      for (const auto& b : r.explanation->because) {
        ojson entry = {{"item", b.item}};
        if (list.details) entry["title"] = b.title;
        entry["contribution"] = b.contribution;
        entry["share"] = b.share;
        because.push_back(std::move(entry));
      }
      item["because"] = std::move(because);
      item["because_others"] = r.explanation->others;
      item["because_base"] = r.explanation->base;
    }
    items.push_back(std::move(item));
  }
  ojson out;
  if (!list.subject_key.empty()) out[std::string(list.subject_key)] = list.subject;
  out["model_version"] = list.model_version;
  if (!list.recommendation_id.empty()) out["recommendation_id"] = list.recommendation_id;
  if (!list.variant.empty()) out["variant"] = list.variant;
  out["items"] = std::move(items);
  return out.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

TEST(ItemListJson, WritesWhatTheDomWouldHostileStringsIncluded) {
  const std::string bad_utf8 = "caf\xc3";  // cut in the middle of a sequence
  ItemList list{"user",         "u\"1\\", "v000002", "0123456789abcdef0123456789abcdef",
                "narrow\"beam", true,     true,      {}};
  list.items.push_back(
      {"<img src=x onerror=alert(1)>",
       0.8426203727f,
       "personalized",
       "Title \"quoted\"\n\t\x01 und Stra\xc3\x9f"
       "e",
       {"a", "b/c", bad_utf8},
       4.5f,
       ItemExplanation{
           "fold-in", 0.25f, -0.125f, {{"i\"9", bad_utf8, 0.5f, 0.59f}, {"i3", "", 0.1f, 0.12f}}}});
  list.items.push_back({"i2", 1e-7f, "popular", "", {}, std::nullopt, std::nullopt});
  list.items.push_back({bad_utf8,
                        std::numeric_limits<float>::quiet_NaN(),
                        "similar",
                        bad_utf8,
                        {},
                        std::numeric_limits<float>::infinity(),
                        ItemExplanation{"trained", 0.0f, 0.0f, {}}});
  EXPECT_EQ(ItemListJson(list).body, Reference(list));
  list.details = false;
  list.predicted_rating = false;
  list.subject_key = "";
  list.recommendation_id = "";
  list.variant = "";
  EXPECT_EQ(ItemListJson(list).body, Reference(list));
  list.items.clear();
  EXPECT_EQ(ItemListJson(list).body, Reference(list));
}

TEST(ItemSourcePairsJson, WritesWhatTheDomWould) {
  const std::vector<std::pair<std::string, std::string>> items = {
      {"i\"1\n", "personalized"}, {"caf\xc3", "popular"}, {"", "similar"}};
  ojson dom = ojson::array();
  for (const auto& [item, source] : items) dom.push_back({item, source});
  EXPECT_EQ(ItemSourcePairsJson(items), dom.dump(-1, ' ', false, ojson::error_handler_t::replace));
  EXPECT_EQ(ItemSourcePairsJson({}), "[]");
}

}  // namespace
}  // namespace recloop
