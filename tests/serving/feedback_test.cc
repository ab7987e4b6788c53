// The feedback loop over real sockets: a server on 127.0.0.1 over a model trained on a generated
// store with planted taste clusters, and an event store. A customer's events are durable, then
// folded in, so their very next request reflects them.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/event_store.h"
#include "data/generator.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/feedback_folder.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "tbb/global_control.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

using json = nlohmann::json;
using test::Client;
using test::Reply;
namespace http = boost::beast::http;

class FeedbackTest : public test::PlantedStoreServer {
 protected:
  void SetUp() override {
    PlantedStoreServer::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    api_ = std::make_unique<Api>(
        ApiServices{.live = live_.get(), .metrics = &metrics_, .events = events_.get()},
        ApiOptions{});
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();  // the server first: its handler uses the members below
    api_.reset();
  }

  Reply Post(Client& c, const json& body) {
    return c.Send(http::verb::post, "/v1/feedback", body.dump());
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<Api> api_;
};

// Acceptance: a new customer whose events all fall in one planted cluster gets popular items
// before, and at least 8 of 10 from that cluster after; a purchased item never comes back.
TEST_F(FeedbackTest, NewCustomersEventsPersonaliseTheirNextRequest) {
  Client c(server_->port());
  const std::string recs = "/v1/users/newcomer/recommendations?n=10";
  Reply r = c.Get(recs);
  ASSERT_EQ(r.status, 200) << r.body;
  const json before = r.Json();  // named: a loop over a temporary's member dangles
  for (const auto& item : before["items"]) EXPECT_EQ(item["source"], "popular");

  const int cluster = 2;
  const std::vector<std::string> bought = ItemsOf(cluster, 6);
  const std::vector<std::string> viewed = ItemsOf(cluster, 12);
  json events = json::array();
  for (const auto& item : bought) {
    events.push_back({{"user", "newcomer"}, {"item", item}, {"type", "purchase"}});
  }
  for (size_t j = 6; j < viewed.size(); ++j) {
    events.push_back({{"user", "newcomer"},
                      {"item", viewed[j]},
                      {"type", "view"},
                      {"timestamp", "2026-01-02T03:04:05Z"}});
  }
  r = Post(c, events);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["accepted"], events.size());
  EXPECT_TRUE(r.Json()["rejected"].empty());

  r = c.Get(recs);
  ASSERT_EQ(r.status, 200) << r.body;
  // The documented shape, in the documented order.
  EXPECT_EQ(r.body.rfind(R"({"user":"newcomer","model_version":")", 0), 0u) << r.body;
  const json items = r.Json()["items"];
  ASSERT_EQ(items.size(), 10u);
  int in_cluster = 0;
  for (const auto& item : items) {
    const std::string id = item["item"];
    EXPECT_EQ(item["source"], "personalized");
    in_cluster += ClusterOf(id) == cluster;
    EXPECT_EQ(std::count(bought.begin(), bought.end(), id), 0) << id << " was bought";
    EXPECT_EQ(std::count(viewed.begin(), viewed.end(), id), 0) << id << " was seen";
  }
  EXPECT_GE(in_cluster, 8) << r.body;

  // The history, in order, as stored.
  r = c.Get("/v1/users/newcomer/feedback");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.Json()["events"].size(), events.size());
  EXPECT_EQ(r.Json()["events"][0]["type"], "purchase");
  EXPECT_EQ(r.Json()["events"][6]["timestamp"], "2026-01-02T03:04:05Z");

  // Freshness lag and counters on /metrics.
  const std::string metrics = c.Get("/metrics").body;
  EXPECT_NE(metrics.find("recloop_feedback_freshness_seconds_count 1"), std::string::npos);
  EXPECT_NE(metrics.find("recloop_feedback_events_total{outcome=\"accepted\"} 12"),
            std::string::npos);
}

// Issue 25 item 5: explain=true says why each personalised item is shown. A newcomer's vector
// is their fold-in, an exact solve over what they bought, so each item's score splits exactly
// into the named items of their own history, the others and the item's base.
TEST_F(FeedbackTest, ExplainedScoresSplitIntoTheCustomersOwnHistory) {
  Client c(server_->port());
  const std::vector<std::string> bought = ItemsOf(1, 6);
  json events = json::array();
  for (const auto& item : bought) {
    events.push_back({{"user", "explained"}, {"item", item}, {"type", "purchase"}});
  }
  Reply r = Post(c, events);
  ASSERT_EQ(r.status, 200) << r.body;
  r = c.Get("/v1/users/explained/recommendations?n=10&explain=true&details=true");
  ASSERT_EQ(r.status, 200) << r.body;
  const json items = r.Json()["items"];
  ASSERT_EQ(items.size(), 10u);
  for (const json& item : items) {
    SCOPED_TRACE(item.dump());
    ASSERT_EQ(item["source"], "personalized");
    EXPECT_EQ(item["vector"], "fold-in");
    const float score = item["score"];
    ASSERT_FALSE(item["because"].empty());
    EXPECT_LE(item["because"].size(), 3u);
    double sum = item["because_base"].get<double>() + item["because_others"].get<double>();
    double previous = 1e30;
    for (const json& b : item["because"]) {
      EXPECT_EQ(std::count(bought.begin(), bought.end(), b["item"].get<std::string>()), 1);
      EXPECT_TRUE(b.contains("title"));
      const double contribution = b["contribution"];
      EXPECT_LE(contribution, previous) << "largest first";
      previous = contribution;
      EXPECT_NEAR(b["share"].get<double>(), contribution / score, 1e-5);
      sum += contribution;
    }
    EXPECT_NEAR(sum, score, 1e-3 * std::max(1.0f, std::abs(score)));
  }
  // Without explain=true nothing of it is sent; a bad value and another route refuse it.
  r = c.Get("/v1/users/explained/recommendations?n=3");
  EXPECT_EQ(r.body.find("because"), std::string::npos) << r.body;
  r = c.Get("/v1/users/explained/recommendations?explain=yes");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"]["code"], "bad_parameter");
  r = c.Get("/v1/items/" + bought[0] + "/similar?explain=true");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"]["code"], "unknown_parameter");
  // A customer of the trained model is explained from their training row.
  r = c.Get("/v1/users?n=1");
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string known = r.Json()["users"][0];
  r = c.Get("/v1/users/" + known + "/recommendations?n=5&explain=true");
  ASSERT_EQ(r.status, 200) << r.body;
  const json trained = r.Json();  // named: a loop over a temporary's member dangles
  for (const json& item : trained["items"]) {
    EXPECT_EQ(item["vector"], "trained") << item.dump();
    EXPECT_FALSE(item["because"].empty()) << item.dump();
  }
}

// Issue 25 items 1 and 2 over HTTP: every list carries its own recommendation_id; clicks and
// purchases are credited to the list they answer, by id or by the customer's latest list that
// held the item, at the item's position; the impressions reach the event store.
TEST_F(FeedbackTest, ListsCarryARecommendationIdAndEarnTheirClicks) {
  Client c(server_->port());
  Reply r = c.Get("/v1/users/shopper/recommendations?n=5");  // unknown: popular items
  ASSERT_EQ(r.status, 200) << r.body;
  const json first = r.Json();
  const std::string id = first["recommendation_id"];
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(r.body.find(R"({"user":"shopper","model_version":")"), 0u) << r.body;
  const std::string version = first["model_version"];
  r = c.Get("/v1/popular?n=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.Json()["recommendation_id"], id);
  const std::string similar_to = first["items"][0]["item"];
  r = c.Get("/v1/items/" + similar_to + "/similar?n=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["recommendation_id"].get<std::string>().size(), 32u);

  const std::string third = first["items"][2]["item"], top = first["items"][0]["item"];
  json events = json::array();
  events.push_back(
      {{"user", "shopper"}, {"item", third}, {"type", "click"}, {"recommendation_id", id}});
  events.push_back({{"user", "shopper"}, {"item", top}, {"type", "purchase"}});  // by its list
  events.push_back({{"user", "shopper"}, {"item", third}, {"type", "view"}});    // not credited
  r = Post(c, events);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.Json()["accepted"], 3);
  events = json::array(
      {{{"user", "shopper"}, {"item", third}, {"type", "click"}, {"recommendation_id", 7}}});
  r = Post(c, events);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["rejected"].size(), 1u) << r.body;

  const std::string metrics = c.Get("/metrics").body;
  const std::string served =
      "recloop_impressions_served_total{model_version=\"" + version + "\",variant=\"\"} 3";
  EXPECT_NE(metrics.find(served), std::string::npos) << metrics;
  for (const std::string& line :
       {"recloop_attributed_events_total{model_version=\"" + version +
            "\",variant=\"\",type=\"click\"} 1",
        "recloop_attributed_events_total{model_version=\"" + version +
            "\",variant=\"\",type=\"purchase\"} 1",
        std::string("recloop_attributed_events_by_position_total{position=\"3\",type=\"click\"} 1"),
        std::string(
            "recloop_attributed_events_by_position_total{position=\"1\",type=\"purchase\"} 1")}) {
    EXPECT_NE(metrics.find(line), std::string::npos) << line;
  }
  EXPECT_EQ(metrics.find("type=\"view\""), std::string::npos);
}

TEST_F(FeedbackTest, AKnownCustomersPurchaseDisappearsAtOnce) {
  Client c(server_->port());
  const std::string recs = "/v1/users/u7/recommendations?n=5";
  Reply r = c.Get(recs);
  ASSERT_EQ(r.status, 200);
  const std::string top = r.Json()["items"][0]["item"];
  ASSERT_EQ(r.Json()["items"][0]["source"], "personalized");
  r = Post(c, json::array({{{"user", "u7"}, {"item", top}, {"type", "purchase"}}}));
  ASSERT_EQ(r.status, 200) << r.body;
  r = c.Get(recs);
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.Json()["items"].size(), 5u);
  const json after = r.Json();  // named: a loop over a temporary's member dangles
  for (const auto& item : after["items"]) EXPECT_NE(item["item"], top);
}

TEST_F(FeedbackTest, BadEventsAreRejectedOneByOneAndABadBodyStoresNothing) {
  Client c(server_->port());
  json events = json::array();
  events.push_back({{"user", "a"}, {"item", "i1"}, {"type", "click"}});
  events.push_back({{"user", "a"}, {"item", "i2"}, {"type", "teleport"}});  // unknown type
  events.push_back({{"user", "a"}, {"item", "i3"}, {"type", "rating"}});    // no value
  events.push_back({{"user", "a"}, {"type", "view"}});                      // no item
  events.push_back({{"user", "a"}, {"item", "i4"}, {"type", "view"}, {"timestamp", "yesterday"}});
  events.push_back({{"user", "a"}, {"item", "brand-new-item"}, {"type", "rating"}, {"value", 4}});
  Reply r = Post(c, events);
  ASSERT_EQ(r.status, 200) << r.body;
  const json out = r.Json();
  EXPECT_EQ(out["accepted"], 2);  // the click, and the rating of an item no model knows yet
  ASSERT_EQ(out["rejected"].size(), 4u);
  EXPECT_EQ(out["rejected"][0]["index"], 1);
  EXPECT_NE(out["rejected"][0]["error"].get<std::string>().find("teleport"), std::string::npos);
  EXPECT_EQ(out["rejected"][1]["index"], 2);
  EXPECT_EQ(out["rejected"][2]["index"], 3);
  EXPECT_EQ(out["rejected"][3]["index"], 4);
  EXPECT_EQ(events_->Count().value(), 2);

  for (const std::string body : {"{\"user\":\"a\"}", "[{\"user\":", "not json"}) {
    r = c.Send(http::verb::post, "/v1/feedback", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.Json()["error"]["code"], "bad_body") << r.body;
  }
  r = c.Send(http::verb::post, "/v1/feedback", "[]", "text/plain");
  EXPECT_EQ(r.status, 415);
  r = c.Get("/v1/feedback");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(events_->Count().value(), 2);
}

TEST_F(FeedbackTest, RetriedBatchWithIdsIsStoredOnce) {
  Client c(server_->port());
  const json events =
      json::array({{{"user", "b"}, {"item", "i1"}, {"type", "view"}, {"id", "e1"}},
                   {{"user", "b"}, {"item", "i2"}, {"type", "view"}, {"id", "e2"}}});
  ASSERT_EQ(Post(c, events).status, 200);
  const Reply r = Post(c, events);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["accepted"], 2);
  EXPECT_EQ(r.Json()["duplicates"], 2);
  EXPECT_EQ(events_->Count().value(), 2);
}

// An erasure right after a POST races that POST's fold (which runs on the fold queue's thread):
// a fold that read the history before the erasure must not publish its vector after it.
TEST_F(FeedbackTest, ErasureRightAfterFeedbackIsNeverUndoneByItsFold) {
  Client c(server_->port());
  const std::vector<std::string> items = ItemsOf(2, 8);
  for (int u = 10; u < 50; ++u) {  // 40 training users
    const std::string user = "u" + std::to_string(u);
    json events = json::array();
    for (const auto& item : items)
      events.push_back({{"user", user}, {"item", item}, {"type", "cart"}});
    ASSERT_EQ(Post(c, events).status, 200);
    ASSERT_EQ(c.Send(http::verb::delete_, "/v1/users/" + user).status, 200);
  }
  for (int u = 10; u < 50; ++u) {
    const std::string user = "u" + std::to_string(u);
    const Reply r = c.Get("/v1/users/" + user + "/recommendations?n=3");
    ASSERT_EQ(r.status, 200);
    const json j = r.Json();
    for (const auto& item : j["items"]) EXPECT_EQ(item["source"], "popular") << user;
  }
}

TEST_F(FeedbackTest, ErasedCustomerIsForgottenByStoreAndLiveModel) {
  Client c(server_->port());
  const std::vector<std::string> items = ItemsOf(1, 8);
  json events = json::array();
  for (const auto& item : items)
    events.push_back({{"user", "u3"}, {"item", item}, {"type", "cart"}});
  ASSERT_EQ(Post(c, events).status, 200);
  Reply r = c.Send(http::verb::delete_, "/v1/users/u3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["erased_events"], 8);
  EXPECT_TRUE(events_->UserEvents("u3").value().empty());
  EXPECT_TRUE(c.Get("/v1/users/u3/feedback").Json()["events"].empty());
  // u3 was a training user: the live model no longer uses their history either.
  r = c.Get("/v1/users/u3/recommendations?n=5");
  ASSERT_EQ(r.status, 200);
  const json after_erase = r.Json();  // named: a loop over a temporary's member dangles
  for (const auto& item : after_erase["items"]) EXPECT_EQ(item["source"], "popular");
  // New events after the erasure count again, from scratch.
  ASSERT_EQ(
      Post(c, json::array({{{"user", "u3"}, {"item", items[0]}, {"type", "purchase"}}})).status,
      200);
  r = c.Get("/v1/users/u3/recommendations?n=5");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["items"][0]["source"], "personalized");
}

// The one fold path on its own: a fold publishes the user's history for the live version, a
// restart's catch-up finds the same users, and an erasure replaces the entry with an erased one
// that a later fold keeps honouring (the training row no longer counts).
TEST_F(FeedbackTest, FolderFoldsRestoresAndErasesThroughOnePath) {
  FeedbackFolder folder(live_.get(), events_.get(), FeedbackOptions{});
  const std::vector<std::string> bought = ItemsOf(1, 4);
  std::vector<Event> events;
  for (const auto& item : bought) {
    Event e;
    e.user = "folded";
    e.item = item;
    e.type = "purchase";
    events.push_back(e);
  }
  ASSERT_OK(events_->Append(events).status());
  const std::string version = live_->Get()->version();
  ASSERT_OK(folder.FoldNow("folded"));
  auto entry = folder.overlay().Find("folded", version);
  ASSERT_NE(entry, nullptr);
  EXPECT_FALSE(entry->factors.empty());
  EXPECT_EQ(entry->seen.size(), bought.size());

  FeedbackFolder restarted(live_.get(), events_.get(), FeedbackOptions{});
  ASSERT_OK_AND_ASSIGN(const int64_t restored, restarted.RestoreFolds());
  EXPECT_EQ(restored, 1);
  ASSERT_NE(restarted.overlay().Find("folded", version), nullptr);

  ASSERT_OK_AND_ASSIGN(const int64_t erased, folder.EraseUser("folded"));
  EXPECT_EQ(erased, static_cast<int64_t>(bought.size()));
  entry = folder.overlay().Find("folded", version);
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(entry->erased);
  EXPECT_TRUE(entry->factors.empty());
  ASSERT_OK(folder.FoldNow("folded"));
  entry = folder.overlay().Find("folded", version);
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(entry->erased);
  EXPECT_TRUE(entry->seen.empty());
}

}  // namespace
}  // namespace recloop
