// Continuous retraining over real sockets: a server on 127.0.0.1 with an event store and a
// retrainer, over a model trained on a generated store with planted taste clusters. A retrain
// is promoted under constant load without a failed request, a deliberately worse model is
// refused by the gate, users' fresh feedback survives the swap, and rollback restores the
// previous version.
#include "serving/retrainer.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
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

constexpr const char* kKey = "test-key";
constexpr const char* kAuth = "Bearer test-key";

class RetrainerTest : public test::PlantedStoreServer {
 protected:
  // Retrains only when asked (tests that want a trigger set it on the result).
  static RetrainerOptions OnRequest() {
    RetrainerOptions options;
    options.every_events = 0;
    options.every_minutes = 0;
    return options;
  }

  void Start(RetrainerOptions options = OnRequest()) {
    options.iterations = 3;
    // Warm-started candidates land within about 1% of the live model here; 5% keeps the tests
    // that need a promotion off that edge (the refused model is 60% worse).
    options.gate.tolerance = std::max(options.gate.tolerance, 0.05);
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    folder_ = std::make_unique<FeedbackFolder>(live_.get(), events_.get(), FeedbackOptions{},
                                               FoldQueueOptions{.threads = 1}, &metrics_);
    retrainer_ = std::make_unique<Retrainer>(live_.get(), events_.get(), folder_.get(), options);
    ApiOptions api;
    api.api_key = kKey;
    api_ = std::make_unique<Api>(Services(), api);
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  ApiServices Services() {
    return {.live = live_.get(),
            .metrics = &metrics_,
            .events = events_.get(),
            .folder = folder_.get(),
            .retrain = retrainer_.get()};
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();  // the server first: its handler uses the members below
    api_.reset();
    retrainer_.reset();  // before the store and the live model it uses
    folder_.reset();
  }

  // Posts `users` new customers ("new-<prefix>-<u>"), each with 10 events in one cluster, in
  // batches of 100 events, interleaved (each round, one event per customer) as customers'
  // sessions are.
  void PostNewCustomers(const std::string& prefix, int users, uint64_t seed) {
    std::mt19937_64 rng(seed);
    Client c(server_->port());
    json batch = json::array();
    const char* types[] = {"view", "click", "purchase"};
    std::vector<std::vector<std::string>> cluster_items;
    for (int c = 0; c < kClusters; ++c) cluster_items.push_back(ItemsOf(c, 40));
    for (int j = 0; j < 10; ++j) {
      for (int u = 0; u < users; ++u) {
        const std::vector<std::string>& items = cluster_items[u % kClusters];
        batch.push_back({{"user", "new-" + prefix + "-" + std::to_string(u)},
                         {"item", items[rng() % items.size()]},
                         {"type", types[rng() % 3]}});
        if (batch.size() == 100) {
          const Reply r =
              c.Send(http::verb::post, "/v1/feedback", batch.dump(), "application/json", kAuth);
          ASSERT_EQ(r.status, 200) << r.body;
          batch = json::array();
        }
      }
    }
    if (!batch.empty()) {
      ASSERT_EQ(
          c.Send(http::verb::post, "/v1/feedback", batch.dump(), "application/json", kAuth).status,
          200);
    }
  }

  json Admin(const std::string& target, http::verb verb = http::verb::post) {
    Client c(server_->port());
    const Reply r = c.Send(verb, target, "", "application/json", kAuth);
    json j = r.Json();
    j["http_status"] = r.status;
    return j;
  }

  // GET /v1/items/{item}/similar?n=10 once the item has been folded in and indexed (it is
  // added in the background after its events are stored): polls for at most 30 s.
  static Reply SimilarOnceIndexed(Client& c, const std::string& item) {
    Reply similar;
    for (int i = 0; i < 3000; ++i) {
      similar = c.Get("/v1/items/" + item + "/similar?n=10");
      if (similar.status == 200) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return similar;
  }

  std::string LiveVersion() {
    return Client(server_->port()).Get("/v1/model").Json()["model_version"];
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<FeedbackFolder> folder_;
  std::unique_ptr<Retrainer> retrainer_;
  std::unique_ptr<Api> api_;
};

// Acceptance: a retrain and its promotion under a constant client loop: no non-2xx answer, no
// dropped connection; the new version is live; a customer whose events came after the
// retrain's training data keeps their personalised list, without what they bought.
TEST_F(RetrainerTest, PromotionUnderLoadDropsNothingAndKeepsFreshFeedback) {
  Start();
  PostNewCustomers("a", 200, 1);
  // A customer whose purchases are the newest events: held out from the retrain, so they reach
  // the new version only by being folded in again at the swap.
  const int cluster = 3;
  const std::vector<std::string> bought = ItemsOf(cluster, 8);
  {
    json events = json::array();
    for (const auto& item : bought) {
      events.push_back({{"user", "late"}, {"item", item}, {"type", "purchase"}});
    }
    ASSERT_EQ(Client(server_->port())
                  .Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth)
                  .status,
              200);
  }

  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, non_2xx{0}, dropped{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 3; ++t) {
    load.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      auto c = std::make_unique<Client>(server_->port());
      for (int i = 0; i < 200'000 && !stop.load(); ++i) {  // bounded
        Reply r;
        if (i % 10 == 9) {
          const json e = json::array({{{"user", "load-" + std::to_string(t)},
                                       {"item", store_.data.items.External(rng() % 400)},
                                       {"type", "view"}}});
          r = c->Send(http::verb::post, "/v1/feedback", e.dump(), "application/json", kAuth);
        } else {
          const std::string user =
              i % 2 ? "u" + std::to_string(rng() % 800) : "new-a-" + std::to_string(rng() % 200);
          r = c->Get("/v1/users/" + user + "/recommendations?n=10");
        }
        if (r.status == 0) {
          ++dropped;
          c = std::make_unique<Client>(server_->port());
        } else if (r.status < 200 || r.status > 299) {
          ++non_2xx;
        } else {
          ++ok;
        }
      }
    });
  }
  const json outcome = Admin("/v1/admin/retrain?wait=true");
  // Some load after the swap too.
  const int64_t at_swap = ok.load();
  for (int i = 0; i < 500 && ok.load() < at_swap + 300; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  for (auto& t : load) t.join();

  ASSERT_EQ(outcome["http_status"], 200) << outcome.dump();
  EXPECT_EQ(outcome["outcome"], "promoted") << outcome.dump();
  EXPECT_EQ(outcome["version"], "v000002");
  EXPECT_EQ(outcome["gate"]["metric"], "ndcg@10");
  EXPECT_FALSE(outcome["gate"]["skipped"].get<bool>()) << outcome.dump();
  EXPECT_EQ(non_2xx.load(), 0);
  EXPECT_EQ(dropped.load(), 0);
  EXPECT_GT(ok.load(), at_swap);
  EXPECT_EQ(LiveVersion(), "v000002");

  // The lineage: the parent, and the last event trained on (the holdout's events come after).
  const json model = Client(server_->port()).Get("/v1/model").Json();
  EXPECT_EQ(model["lineage"]["parent_version"], "v000001") << model.dump();
  EXPECT_EQ(model["lineage"]["gate"], "passed");
  ASSERT_OK_AND_ASSIGN(const int64_t last_seq, events_->LastSeq());
  const int64_t through = std::stoll(model["lineage"]["events_through_seq"].get<std::string>());
  EXPECT_GT(through, 0);
  EXPECT_LT(through, last_seq);

  // The late customer: personalised on the new version, nothing bought comes back.
  const Reply r = Client(server_->port()).Get("/v1/users/late/recommendations?n=10");
  ASSERT_EQ(r.status, 200) << r.body;
  const json items = r.Json()["items"];
  EXPECT_EQ(r.Json()["model_version"], "v000002");
  int in_cluster = 0;
  for (const auto& item : items) {
    const std::string id = item["item"];
    EXPECT_EQ(item["source"], "personalized") << r.body;
    in_cluster += ClusterOf(id) == cluster;
    EXPECT_EQ(std::count(bought.begin(), bought.end(), id), 0) << id << " was bought";
  }
  EXPECT_GE(in_cluster, 8) << r.body;

  // Customers the retrain trained on are in the new model itself.
  ASSERT_OK_AND_ASSIGN(const FactorModel v2, LoadModel(dir_.File("models")));
  EXPECT_TRUE(v2.users.Find("new-a-0").has_value());
  EXPECT_FALSE(v2.users.Find("late").has_value());

  const std::string metrics = Client(server_->port()).Get("/metrics").body;
  EXPECT_NE(metrics.find("recloop_retrain_total{outcome=\"promoted\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("recloop_retrain_gate_metric{model=\"candidate\",metric=\"ndcg@10\"}"),
            std::string::npos);
}

// Acceptance: a model trained with absurd regularisation is refused by the gate: the live
// version stays, the candidate is kept on disk under refused/, and the refusal is counted.
TEST_F(RetrainerTest, GateRefusesADeliberatelyWorseModel) {
  RetrainerOptions options = OnRequest();
  options.regularization = 1e7f;
  Start(options);
  PostNewCustomers("b", 200, 2);
  const json outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_EQ(outcome["http_status"], 200) << outcome.dump();
  EXPECT_EQ(outcome["outcome"], "refused") << outcome.dump();
  EXPECT_LT(outcome["gate"]["candidate"].get<double>(), outcome["gate"]["live"].get<double>());
  EXPECT_EQ(outcome["version"], "refused/v000001");
  EXPECT_TRUE(std::filesystem::exists(dir_.File("models/refused/v000001/model.pb")));
  EXPECT_EQ(LiveVersion(), "v000001");
  ASSERT_OK_AND_ASSIGN(const std::vector<std::string> versions, ListVersions(dir_.File("models")));
  EXPECT_EQ(versions, std::vector<std::string>{"v000001"});
  const std::string metrics = Client(server_->port()).Get("/metrics").body;
  EXPECT_NE(metrics.find("recloop_retrain_total{outcome=\"refused\"} 1"), std::string::npos)
      << metrics;
  // The last outcome is there for operators.
  const json last = Admin("/v1/admin/retrain", http::verb::get);
  EXPECT_EQ(last["last"]["outcome"], "refused") << last.dump();
}

// Rollback swaps the previous version back in (and `current` with it); with nothing earlier it
// is a 409. Old versions beyond keep_versions are removed.
TEST_F(RetrainerTest, RollbackRestoresThePreviousVersionAndOldVersionsArePruned) {
  RetrainerOptions options = OnRequest();
  options.keep_versions = 2;
  Start(options);
  PostNewCustomers("c", 120, 3);
  json outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_EQ(outcome["outcome"], "promoted") << outcome.dump();
  PostNewCustomers("d", 120, 4);
  outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_EQ(outcome["outcome"], "promoted") << outcome.dump();
  EXPECT_EQ(LiveVersion(), "v000003");
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> versions, ListVersions(dir_.File("models")));
  EXPECT_EQ(versions, (std::vector<std::string>{"v000002", "v000003"}));

  // A customer of the second batch, folded in on every version they are served from.
  const std::string user = "new-d-7";
  json r = Admin("/v1/admin/rollback");
  ASSERT_EQ(r["http_status"], 200) << r.dump();
  EXPECT_EQ(r["model_version"], "v000002");
  EXPECT_EQ(LiveVersion(), "v000002");
  ASSERT_OK_AND_ASSIGN(const std::string current, ResolveModelDir(dir_.File("models")));
  EXPECT_EQ(std::filesystem::path(current).filename(), "v000002");
  const Reply recs = Client(server_->port()).Get("/v1/users/" + user + "/recommendations?n=5");
  ASSERT_EQ(recs.status, 200);
  EXPECT_EQ(recs.Json()["items"][0]["source"], "personalized") << recs.body;

  r = Admin("/v1/admin/rollback");
  EXPECT_EQ(r["http_status"], 409) << r.dump();
  EXPECT_EQ(r["error"]["code"], "no_earlier_version");
  EXPECT_NE(Client(server_->port()).Get("/metrics").body.find("recloop_model_rollbacks_total 1"),
            std::string::npos);
}

// Issue 20 item 4: a promoted retrain carries the live version's rating head into the new
// version, so ?predicted_rating=true survives the swap.
TEST_F(RetrainerTest, APromotedRetrainKeepsTheRatingHead) {
  ASSERT_OK_AND_ASSIGN(const FactorModel model, LoadModel(models_dir()));
  FactorModel head = model;  // any model will do as the head: its predictions are checked
  head.params.feedback = FeedbackKind::kExplicit;
  head.global_mean = 3.0f;
  head.min_value = 1.0f;
  head.max_value = 5.0f;
  SaveModelOptions save;
  save.rating_head = &head;
  ASSERT_OK(SaveModel(model, models_dir(), save).status());  // v000002, with the head
  Start();
  PostNewCustomers("h", 120, 8);
  const json outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_EQ(outcome["outcome"], "promoted") << outcome.dump();
  EXPECT_EQ(LiveVersion(), "v000003");
  ASSERT_OK_AND_ASSIGN(const std::optional<FactorModel> kept, LoadRatingHead(models_dir()));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->users.externals(), head.users.externals());
  EXPECT_EQ(kept->user_factors, head.user_factors);
  EXPECT_EQ(kept->item_factors, head.item_factors);

  const std::string user = head.users.External(0);
  const Reply r = Client(server_->port())
                      .Get("/v1/users/" + user + "/recommendations?n=3&predicted_rating=true");
  ASSERT_EQ(r.status, 200) << r.body;
  const json list = r.Json();
  EXPECT_EQ(list["model_version"], "v000003");
  ASSERT_EQ(list["items"].size(), 3u) << r.body;
  for (const json& item : list["items"]) {
    ASSERT_TRUE(item["predicted_rating"].is_number()) << item.dump();
    const int32_t i = *head.items.Find(item["item"].get<std::string>());
    EXPECT_EQ(item["predicted_rating"].get<double>(),
              static_cast<double>(head.PredictRating(0, i)));
  }
}

// The retrainer starts by itself after every_events new events.
TEST_F(RetrainerTest, RetrainsAfterEnoughNewEvents) {
  RetrainerOptions options = OnRequest();
  options.every_events = 1000;
  Start(options);
  PostNewCustomers("e", 150, 5);  // 1,500 events
  std::optional<RetrainOutcome> last;
  for (int i = 0; i < 6000 && !(last = retrainer_->Last()); ++i) {  // at most 60 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(last.has_value()) << "no retrain started after 1,500 events";
  EXPECT_TRUE(last->outcome == "promoted" || last->outcome == "refused") << last->message;
}

// An erased customer is not in the next trained model, though the live one was trained on them.
TEST_F(RetrainerTest, ErasedCustomersAreNotInTheNextModel) {
  Start();
  ASSERT_TRUE(live_->Get()->model->users.Find("u7").has_value());
  Client c(server_->port());
  ASSERT_EQ(c.Send(http::verb::delete_, "/v1/users/u7", "", "", kAuth).status, 200);
  PostNewCustomers("f", 120, 6);
  const json outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_EQ(outcome["outcome"], "promoted") << outcome.dump();
  ASSERT_OK_AND_ASSIGN(const FactorModel v2, LoadModel(dir_.File("models")));
  EXPECT_FALSE(v2.users.Find("u7").has_value());
  EXPECT_TRUE(v2.users.Find("u8").has_value());
  const Reply r = c.Get("/v1/users/u7/recommendations?n=3");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.Json()["items"][0]["source"], "popular") << r.body;
}

// A new item bought by enough customers the model knows enters the item index before any
// retrain: its similar items are its buyers' taste, and its buyers are not shown it again. An
// item below the threshold stays out.
TEST_F(RetrainerTest, ANewItemWithEnoughInteractionsEntersTheIndexBeforeARetrain) {
  RetrainerOptions options = OnRequest();
  options.new_item_min_events = 5;
  Start(options);
  const int cluster = 2;
  std::vector<std::string> buyers;
  for (int32_t u = 0; u < store_.data.users.size() && buyers.size() < 12; ++u) {
    if (store_.user_cluster[u] == cluster) buyers.push_back(store_.data.users.External(u));
  }
  json events = json::array();
  for (int j = 0; j < 3; ++j) {
    events.push_back({{"user", buyers[j]}, {"item", "rare-item"}, {"type", "purchase"}});
  }
  for (const auto& buyer : buyers) {
    events.push_back({{"user", buyer}, {"item", "brand-new"}, {"type", "purchase"}});
  }
  Client c(server_->port());
  ASSERT_EQ(
      c.Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth).status,
      200);
  const Reply similar = SimilarOnceIndexed(c, "brand-new");
  ASSERT_EQ(similar.status, 200) << similar.body;
  const json items = similar.Json()["items"];
  ASSERT_EQ(items.size(), 10u);
  int in_cluster = 0;
  for (const auto& item : items) in_cluster += ClusterOf(item["item"]) == cluster;
  EXPECT_GE(in_cluster, 7) << similar.body;
  EXPECT_EQ(similar.Json()["model_version"], "v000001");  // no retrain happened
  EXPECT_EQ(c.Get("/v1/items/rare-item/similar?n=10").status, 404);
  const Reply recs = c.Get("/v1/users/" + buyers[0] + "/recommendations?n=100");
  ASSERT_EQ(recs.status, 200);
  EXPECT_EQ(recs.body.find("\"brand-new\""), std::string::npos) << "shown to a buyer";
  EXPECT_NE(c.Get("/metrics").body.find("recloop_new_items_total 1"), std::string::npos);
}

// However the feedback folds and the new item's indexing interleave (folds of the buyers may
// still be running against the old snapshot when the item is indexed), no buyer is ever shown
// the new item they just bought: rounds of new items, each bought by customers of every cluster.
TEST_F(RetrainerTest, NoBuyerIsShownANewItemTheyBoughtWhateverTheFoldOrder) {
  RetrainerOptions options = OnRequest();
  options.new_item_min_events = 5;
  Start(options);
  Client c(server_->port());
  for (int round = 0; round < 6; ++round) {
    const std::string item = "fresh-" + std::to_string(round);
    std::vector<std::string> buyers;
    json events = json::array();
    for (int32_t u = round; buyers.size() < 10; u += 7) {
      buyers.push_back(store_.data.users.External(u));
      events.push_back({{"user", buyers.back()}, {"item", item}, {"type", "purchase"}});
    }
    ASSERT_EQ(
        c.Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth).status,
        200);
    ASSERT_EQ(SimilarOnceIndexed(c, item).status, 200) << item << " was never indexed";
    for (const std::string& buyer : buyers) {
      const Reply recs = c.Get("/v1/users/" + buyer + "/recommendations?n=100");
      ASSERT_EQ(recs.status, 200) << recs.body;
      EXPECT_EQ(recs.body.find("\"" + item + "\""), std::string::npos)
          << item << " shown to its buyer " << buyer;
    }
  }
  EXPECT_NE(c.Get("/metrics").body.find("recloop_new_items_total 6"), std::string::npos);
}

// The overlay is in memory: a restarted server folds in again everyone whose feedback is newer
// than the model, so no customer's feedback is forgotten.
TEST_F(RetrainerTest, FeedbackNewerThanTheModelIsFoldedInAgainAfterARestart) {
  Start();
  const std::vector<std::string> bought = ItemsOf(1, 6);
  json events = json::array();
  for (const auto& item : bought) {
    events.push_back({{"user", "returning"}, {"item", item}, {"type", "purchase"}});
  }
  ASSERT_EQ(Client(server_->port())
                .Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth)
                .status,
            200);
  // What a new process has: the same model and store, an empty overlay.
  FeedbackFolder restarted(live_.get(), events_.get(), FeedbackOptions{});
  ASSERT_OK_AND_ASSIGN(const int64_t restored, restarted.RestoreFolds());
  EXPECT_EQ(restored, 1);
  const auto entry = restarted.overlay().Find("returning", "v000001");
  ASSERT_NE(entry, nullptr);
  EXPECT_FALSE(entry->factors.empty());
  EXPECT_EQ(entry->seen.size(), bought.size());
}

// Admin routes need the key: 401 without or with a wrong one, 403 on a server without a key.
TEST_F(RetrainerTest, AdminRoutesNeedTheApiKey) {
  Start();
  Client c(server_->port());
  EXPECT_EQ(c.Send(http::verb::post, "/v1/admin/retrain").status, 401);
  EXPECT_EQ(c.Send(http::verb::post, "/v1/admin/rollback", "", "", "Bearer nope").status, 401);
  EXPECT_EQ(c.Send(http::verb::get, "/v1/admin/rollback", "", "", kAuth).status, 405);
  EXPECT_EQ(c.Send(http::verb::post, "/v1/admin/retrain?wait=maybe", "", "", kAuth).status, 400);
  EXPECT_EQ(c.Send(http::verb::post, "/v1/admin/retrain?now=1", "", "", kAuth).status, 400);
  // No new events: nothing to retrain, said so.
  const json outcome = Admin("/v1/admin/retrain?wait=true");
  EXPECT_EQ(outcome["outcome"], "skipped") << outcome.dump();

  Api keyless(Services(), ApiOptions{});
  HttpRequest req;
  req.method = "POST";
  req.target = "/v1/admin/retrain";
  const HttpResponse res = keyless.Handle(req);
  EXPECT_EQ(res.status, 403);
  EXPECT_NE(res.body.find("admin_disabled"), std::string::npos);
}

// The default explicit model, BPMF, in the whole loop: a server over a BPMF model trained on
// generated ratings folds a newcomer's ratings in (each served sample's posterior mean), brings
// a new item into the index from its ratings, and retrains a BPMF model.
class BpmfServingTest : public RetrainerTest {
 protected:
  TrainOptions Training() const override {
    TrainOptions t;
    t.algorithm = Algorithm::kBpmf;  // explicit ratings (t.feedback's default)
    t.bpmf.factors = 8;
    t.bpmf.burn_in = 10;
    t.bpmf.samples = 20;
    t.bpmf.served_samples = 4;
    return t;
  }

  json Rate(const std::string& user, const std::vector<std::string>& items, double value) {
    json events = json::array();
    for (const auto& item : items) {
      events.push_back({{"user", user}, {"item", item}, {"type", "rating"}, {"value", value}});
    }
    return events;
  }

  int InCluster(const json& items, int cluster) {
    int n = 0;
    for (const auto& item : items) n += ClusterOf(item["item"]) == cluster;
    return n;
  }
};

TEST_F(BpmfServingTest, RatingsFoldInANewcomerAndANewItemAndARetrainStaysBpmf) {
  RetrainerOptions options = OnRequest();
  options.new_item_min_events = 5;
  Start(options);
  ASSERT_EQ(live_->Get()->model->params.algorithm, Algorithm::kBpmf);
  Client c(server_->port());
  const int cluster = 3;
  // Two newcomers with opposite tastes: one loves six of cluster 3's items and dislikes six of
  // cluster 1's, the other the reverse. Each is folded in at once, and their lists differ.
  json events = Rate("fan", ItemsOf(cluster, 6), 5.0);
  for (const auto& e : Rate("fan", ItemsOf(1, 6), 1.0)) events.push_back(e);
  for (const auto& e : Rate("critic", ItemsOf(cluster, 6), 1.0)) events.push_back(e);
  for (const auto& e : Rate("critic", ItemsOf(1, 6), 5.0)) events.push_back(e);
  ASSERT_EQ(
      c.Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth).status,
      200);
  std::vector<std::set<std::string>> lists;
  for (const char* user : {"fan", "critic", "stranger"}) {
    const Reply recs = c.Get(std::string("/v1/users/") + user + "/recommendations?n=20");
    ASSERT_EQ(recs.status, 200) << recs.body;
    const json items = recs.Json()["items"];
    ASSERT_EQ(items.size(), 20u);
    std::set<std::string> ids;
    for (const auto& item : items) {
      EXPECT_EQ(item["source"], user == std::string("stranger") ? "popular" : "personalized");
      ids.insert(item["item"].get<std::string>());
    }
    lists.push_back(std::move(ids));
  }
  auto overlap = [](const std::set<std::string>& a, const std::set<std::string>& b) {
    return std::count_if(a.begin(), a.end(), [&](const std::string& x) { return b.count(x); });
  };
  std::cout << "top-20 overlap: fan/critic " << overlap(lists[0], lists[1]) << ", fan/popular "
            << overlap(lists[0], lists[2]) << "\n";
  EXPECT_LE(overlap(lists[0], lists[1]), 10) << "opposite tastes, similar lists";
  EXPECT_LT(overlap(lists[0], lists[2]), 20) << "the fan got the popular list";

  // A new item rated 5 by a dozen of the cluster's customers: its neighbours are that cluster.
  std::vector<std::string> raters;
  for (int32_t u = 0; u < store_.data.users.size() && raters.size() < 12; ++u) {
    if (store_.user_cluster[u] == cluster) raters.push_back(store_.data.users.External(u));
  }
  json item_events = json::array();
  for (const auto& u : raters) {
    item_events.push_back({{"user", u}, {"item", "new-film"}, {"type", "rating"}, {"value", 5}});
  }
  ASSERT_EQ(c.Send(http::verb::post, "/v1/feedback", item_events.dump(), "application/json", kAuth)
                .status,
            200);
  const Reply similar = SimilarOnceIndexed(c, "new-film");
  ASSERT_EQ(similar.status, 200) << similar.body;
  EXPECT_GE(InCluster(similar.Json()["items"], cluster), 6) << similar.body;

  const json outcome = Admin("/v1/admin/retrain?wait=true");
  ASSERT_TRUE(outcome["outcome"] == "promoted" || outcome["outcome"] == "refused")
      << outcome.dump();
  if (outcome["outcome"] == "promoted") {
    ASSERT_OK_AND_ASSIGN(const FactorModel v2, LoadModel(dir_.File("models")));
    EXPECT_EQ(v2.params.algorithm, Algorithm::kBpmf);
    EXPECT_EQ(v2.params.served_samples, 4);
    EXPECT_TRUE(v2.users.Find("fan").has_value());
  }
}

}  // namespace
}  // namespace recloop
