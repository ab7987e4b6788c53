// ImpressionLog (serving/impression_log.h): attribution rules on scripted sessions, with exact
// counts, and the impressions' storage, sampling and export through a real event store.
#include "serving/impression_log.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/event_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/test_util.h"

namespace recloop {
namespace {

using Clock = ImpressionLog::Clock;
using std::chrono::minutes;

ServedList List(const std::string& user, const std::string& version,
                const std::vector<std::string>& items, const std::string& variant = "") {
  ServedList l;
  l.user = user;
  l.route = "recommendations";
  l.model_version = version;
  l.variant = variant;
  for (const auto& i : items) l.items.emplace_back(i, "personalized");
  return l;
}

// The value of one /metrics line, or -1 when it is absent.
double Metric(const std::string& text, const std::string& line_start) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(line_start + " ", 0) == 0) return std::stod(line.substr(line_start.size() + 1));
  }
  return -1;
}

TEST(ImpressionLog, IdsAre32HexDigitsAndDistinct) {
  const std::string a = ImpressionLog::NewId(), b = ImpressionLog::NewId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_NE(a, b);
}

// A scripted session: every rule of the header, with the exact counts it must give.
TEST(ImpressionLog, AttributesAScriptedSessionExactly) {
  ImpressionLogOptions options;
  options.attribution_window = minutes(30);
  ImpressionLog log(nullptr, options);
  const Clock::time_point t0 = Clock::now();
  log.Record("r1", List("alice", "v1", {"a", "b", "c"}), t0);
  log.Record("r2", List("alice", "v2", {"c", "d"}, "B"), t0 + minutes(1));
  log.Record("r3", List("bob", "v1", {"a", "e"}), t0 + minutes(1));

  // Named list: credited at the item's position there, even though r2 is newer.
  EXPECT_EQ(log.Attribute("alice", "b", "click", "r1", t0 + minutes(2)), 2);
  // The same list, item and type again (a retried batch): not twice.
  EXPECT_EQ(log.Attribute("alice", "b", "click", "r1", t0 + minutes(2)), std::nullopt);
  // Another type of the same item: its own credit.
  EXPECT_EQ(log.Attribute("alice", "b", "purchase", "r1", t0 + minutes(3)), 2);
  // No id: the latest list of the customer that held the item (r2 holds c, at position 1).
  EXPECT_EQ(log.Attribute("alice", "c", "cart", "", t0 + minutes(3)), 1);
  // No id and only the older list holds it.
  EXPECT_EQ(log.Attribute("alice", "a", "click", "", t0 + minutes(3)), 1);
  // Views are not credited; an item no list held is not; another customer's list is not.
  EXPECT_EQ(log.Attribute("alice", "d", "view", "", t0 + minutes(3)), std::nullopt);
  EXPECT_EQ(log.Attribute("alice", "zzz", "click", "", t0 + minutes(3)), std::nullopt);
  EXPECT_EQ(log.Attribute("alice", "e", "click", "", t0 + minutes(3)), std::nullopt);
  // A named list that lacks the item, and an unknown id: counted as unmatched, not credited.
  EXPECT_EQ(log.Attribute("alice", "d", "click", "r1", t0 + minutes(3)), std::nullopt);
  EXPECT_EQ(log.Attribute("alice", "a", "click", "nope", t0 + minutes(3)), std::nullopt);
  // Past the window, without an id: nothing (r3 was shown at t0 + 1 min).
  EXPECT_EQ(log.Attribute("bob", "e", "purchase", "", t0 + minutes(32)), std::nullopt);
  // Within it.
  EXPECT_EQ(log.Attribute("bob", "e", "purchase", "", t0 + minutes(30)), 2);

  const std::string m = log.MetricsText();
  EXPECT_EQ(Metric(m, R"(recloop_impressions_served_total{model_version="v1",variant=""})"), 2);
  EXPECT_EQ(Metric(m, R"(recloop_impressions_served_total{model_version="v2",variant="B"})"), 1);
  EXPECT_EQ(
      Metric(m, R"(recloop_attributed_events_total{model_version="v1",variant="",type="click"})"),
      2);  // b and a from r1
  EXPECT_EQ(
      Metric(m,
             R"(recloop_attributed_events_total{model_version="v1",variant="",type="purchase"})"),
      2);  // b from r1, e from r3
  EXPECT_EQ(
      Metric(m, R"(recloop_attributed_events_total{model_version="v2",variant="B",type="cart"})"),
      1);
  EXPECT_EQ(Metric(m, R"(recloop_attributed_events_by_position_total{position="1",type="click"})"),
            1);
  EXPECT_EQ(Metric(m, R"(recloop_attributed_events_by_position_total{position="2",type="click"})"),
            1);
  EXPECT_EQ(
      Metric(m, R"(recloop_attributed_events_by_position_total{position="2",type="purchase"})"), 2);
  EXPECT_EQ(Metric(m, R"(recloop_attribution_unmatched_total{type="click"})"), 2);
  // Without a store nothing is stored, sampled or dropped.
  EXPECT_EQ(Metric(m, R"(recloop_impressions_total{outcome="stored"})"), 0);
}

TEST(ImpressionLog, ForgetsTheOldestImpressionsPastItsBound) {
  ImpressionLogOptions options;
  options.max_recent = 2;
  ImpressionLog log(nullptr, options);
  const Clock::time_point t0 = Clock::now();
  log.Record("r1", List("u", "v1", {"a"}), t0);
  log.Record("r2", List("u", "v1", {"b"}), t0);
  log.Record("r3", List("u", "v1", {"c"}), t0);  // r1 goes
  EXPECT_EQ(log.Attribute("u", "a", "click", "", t0), std::nullopt);
  EXPECT_EQ(log.Attribute("u", "a", "click", "r1", t0), std::nullopt);
  EXPECT_EQ(log.Attribute("u", "b", "click", "", t0), 1);
}

// Stored in the event store in batches, sampled as configured, exported as JSON Lines with
// their attributions.
TEST(ImpressionLog, StoresSampledImpressionsAndExportsThem) {
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto store, EventStore::Open({dir.File("events.db")}));
  {
    ImpressionLog log(store.get(), {});
    log.Record("r1", List("alice", "v1", {"a", "b"}));
    log.Record("r2", List("", "v1", {"c"}));
    EXPECT_EQ(log.Attribute("alice", "b", "purchase", "r1"), 2);
    log.Flush();
    EXPECT_EQ(Metric(log.MetricsText(), R"(recloop_impressions_total{outcome="stored"})"), 2);
  }
  const std::string path = dir.File("impressions.jsonl");
  ASSERT_OK_AND_ASSIGN(const int64_t lines, store->ExportImpressions(path));
  EXPECT_EQ(lines, 3);
  std::ifstream in(path);
  std::string line;
  std::vector<nlohmann::json> got;
  while (std::getline(in, line)) got.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]["recommendation_id"], "r1");
  EXPECT_EQ(got[0]["user"], "alice");
  EXPECT_EQ(got[0]["items"],
            nlohmann::json::parse(R"([["a","personalized"],["b","personalized"]])"));
  EXPECT_EQ(got[1]["user"], "");
  EXPECT_EQ(got[2]["attribution"]["recommendation_id"], "r1");
  EXPECT_EQ(got[2]["attribution"]["position"], 2);
  EXPECT_EQ(got[2]["attribution"]["type"], "purchase");

  ImpressionLogOptions none;
  none.sample_rate = 0.0;
  ImpressionLog sampled(store.get(), none);
  for (int i = 0; i < 10; ++i) sampled.Record(ImpressionLog::NewId(), List("u", "v1", {"a"}));
  sampled.Flush();
  const std::string m = sampled.MetricsText();
  EXPECT_EQ(Metric(m, R"(recloop_impressions_total{outcome="sampled_out"})"), 10);
  EXPECT_EQ(Metric(m, R"(recloop_impressions_total{outcome="stored"})"), 0);
  // Sampled-out impressions are still attributed.
  EXPECT_EQ(sampled.Attribute("u", "a", "click", ""), 1);
}

}  // namespace
}  // namespace recloop
