// Issue 20 over real sockets: a server whose model was trained on ratings the way `recloop
// train` trains it by default (the ranking model, fitted on the ratings as preferences) is
// personalised by events that are not ratings: purchases for a new customer, a dislike that
// pushes the disliked item's neighbours down.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/logger.h"
#include "data/event_store.h"
#include "data/generator.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/live_model.h"
#include "tbb/global_control.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

using json = nlohmann::json;
using test::Client;
using test::Reply;
namespace http = boost::beast::http;

class RatingsTrainedServerTest : public test::PlantedStoreServer {
 protected:
  TrainOptions Training() const override {
    TrainOptions t;
    t.feedback = FeedbackKind::kExplicit;  // the store holds ratings 1-5
    return t;
  }

  void SetUp() override {
    const tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
    ASSERT_OK_AND_ASSIGN(store_, GenerateStore(Planted(FeedbackKind::kExplicit, 5)));
    // What `recloop train --data ratings.csv` fits (training/pipeline.h), without the choice.
    ModelSettings settings;
    settings.feedback = FeedbackKind::kExplicit;
    settings.rank_ratings = true;
    settings.als.factors = 16;
    settings.als.iterations = 10;
    ASSERT_OK_AND_ASSIGN(TrainReport report,
                         TrainAndEvaluate(store_.data, Interactions{}, settings, 10, NullLog()));
    ASSERT_EQ(report.model.params.feedback, FeedbackKind::kImplicit);
    ASSERT_EQ(report.model.params.rating_neutral, 3.0f);
    ASSERT_OK(SaveModel(report.model, models_dir()).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    api_ = std::make_unique<Api>(
        ApiServices{.live = live_.get(), .metrics = &metrics_, .events = events_.get()},
        ApiOptions{});
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();
    api_.reset();
  }

  void PostEvents(Client& c, const std::string& user, const std::vector<std::string>& items,
                  const std::string& type) {
    json events = json::array();
    for (const auto& item : items)
      events.push_back({{"user", user}, {"item", item}, {"type", type}});
    const Reply r = c.Send(http::verb::post, "/v1/feedback", events.dump());
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_EQ(r.Json()["accepted"], items.size()) << r.body;
  }

  // The item IDs of a list response, in order.
  static std::vector<std::string> Ids(const Reply& r) {
    std::vector<std::string> out;
    const json body = r.Json();
    for (const auto& item : body["items"]) out.push_back(item["item"]);
    return out;
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<Api> api_;
};

TEST_F(RatingsTrainedServerTest, FivePurchasesPersonaliseANewCustomer) {
  Client c(server_->port());
  const Reply popular = c.Get("/v1/popular?n=10");
  ASSERT_EQ(popular.status, 200) << popular.body;
  const int cluster = 3;
  const std::vector<std::string> bought = ItemsOf(cluster, 5);
  PostEvents(c, "buyer", bought, "purchase");
  const Reply r = c.Get("/v1/users/buyer/recommendations?n=10");
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = r.Json();
  ASSERT_EQ(body["items"].size(), 10u);
  int in_cluster = 0;
  for (const auto& item : body["items"]) {
    const std::string id = item["item"];
    EXPECT_EQ(item["source"], "personalized") << r.body;
    EXPECT_EQ(std::count(bought.begin(), bought.end(), id), 0) << id << " was bought";
    in_cluster += ClusterOf(id) == cluster;
  }
  EXPECT_NE(Ids(r), Ids(popular)) << "a personal list, not the popular one";
  EXPECT_GE(in_cluster, 7) << r.body;
}

TEST_F(RatingsTrainedServerTest, ADislikeLowersTheDislikedItemsNeighbours) {
  Client c(server_->port());
  const int cluster = 1;
  PostEvents(c, "critic", ItemsOf(cluster, 5), "purchase");
  // Every item the customer has not bought, with its score.
  const std::string recs = "/v1/users/critic/recommendations?n=1000";
  const Reply before = c.Get(recs);
  ASSERT_EQ(before.status, 200) << before.body;
  const std::vector<std::string> ranked_before = Ids(before);
  ASSERT_FALSE(ranked_before.empty());
  const std::string disliked = ranked_before[0];
  const Reply similar = c.Get("/v1/items/" + disliked + "/similar?n=10");
  ASSERT_EQ(similar.status, 200) << similar.body;
  const std::vector<std::string> neighbours = Ids(similar);
  ASSERT_FALSE(neighbours.empty());
  PostEvents(c, "critic", {disliked}, "dislike");
  const Reply after = c.Get(recs);
  ASSERT_EQ(after.status, 200) << after.body;
  const std::vector<std::string> ranked_after = Ids(after);
  EXPECT_EQ(std::count(ranked_after.begin(), ranked_after.end(), disliked), 0);
  // How far each item's score fell: the disliked item's neighbours must fall further than the
  // items of the other planted clusters (whose factors are far from the disliked item's).
  const auto scores = [](const Reply& r) {
    std::map<std::string, double> out;
    const json body = r.Json();
    for (const auto& item : body["items"]) out[item["item"]] = item["score"].get<double>();
    return out;
  };
  const auto s0 = scores(before), s1 = scores(after);
  double near_drop = 0, far_drop = 0;
  int near_n = 0, far_n = 0;
  for (const auto& [id, score] : s1) {
    const auto it = s0.find(id);
    if (it == s0.end()) continue;
    if (std::count(neighbours.begin(), neighbours.end(), id) > 0) {
      near_drop += it->second - score;
      ++near_n;
    } else if (ClusterOf(id) != ClusterOf(disliked)) {
      far_drop += it->second - score;
      ++far_n;
    }
  }
  ASSERT_GT(near_n, 0);
  ASSERT_GT(far_n, 0);
  EXPECT_GT(near_drop / near_n, 0.0) << "the neighbours fall";
  EXPECT_GT(near_drop / near_n, 2.0 * far_drop / far_n) << "and further than unrelated items";
}

TEST_F(RatingsTrainedServerTest, ALowRatingCountsAgainstTheItem) {
  Client c(server_->port());
  const int cluster = 4;
  const std::vector<std::string> liked = ItemsOf(cluster, 5);
  json events = json::array();
  for (const auto& item : liked) {
    events.push_back({{"user", "rater"}, {"item", item}, {"type", "rating"}, {"value", 5}});
  }
  ASSERT_EQ(c.Send(http::verb::post, "/v1/feedback", events.dump()).status, 200);
  const Reply loved = c.Get("/v1/users/rater/recommendations?n=10");
  events = json::array();
  for (const auto& item : liked) {
    events.push_back({{"user", "hater"}, {"item", item}, {"type", "rating"}, {"value", 1}});
  }
  ASSERT_EQ(c.Send(http::verb::post, "/v1/feedback", events.dump()).status, 200);
  const Reply hated = c.Get("/v1/users/hater/recommendations?n=10");
  ASSERT_EQ(loved.status, 200);
  ASSERT_EQ(hated.status, 200);
  int loved_in = 0, hated_in = 0;
  for (const auto& id : Ids(loved)) loved_in += ClusterOf(id) == cluster;
  for (const auto& id : Ids(hated)) hated_in += ClusterOf(id) == cluster;
  EXPECT_GE(loved_in, 7) << loved.body;
  EXPECT_LT(hated_in, loved_in) << hated.body;
}

}  // namespace
}  // namespace recloop
