// The online promotion gate (serving/online_gate.h) in a simulated A/B run over real sockets:
// shoppers are the generated store's users, whose choices follow its planted taste, and the two
// variants are served by two model versions of different quality. The gate must refuse the
// worse one and promote the better one, and the rest of the server must follow its decision.
//
// RECLOOP_AB_SEED (default 1) seeds the shoppers' choices and RECLOOP_AB_MIN_IMPRESSIONS
// (default 250) sets the gate's lists per arm; tests/serving/run_online_ab.sh runs the test over
// many of both and collects the "simulated A/B" lines it prints (BENCHMARKS.md).
#include "serving/online_gate.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "data/generator.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/experiment.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"
#include "serving/retrainer.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

using json = nlohmann::json;
namespace http = boost::beast::http;

constexpr const char* kAuth = "Bearer test-key";
constexpr int kDefaultMinImpressions = 250;  // per arm, before the gate decides
constexpr int kMaxVisits = 3'000;            // bounds the run

// The experiment: half the customers on the live model, half on `candidate`, promoted when its
// conversion is not worse at 95% after min_impressions lists per arm.
std::string ExperimentFile(const std::string& candidate, int min_impressions) {
  return absl::StrCat("name = \"candidate-model\"\nsalt = \"gate\"\n",
                      "[[variant]]\nname = \"control\"\nshare = 50\n",
                      "[[variant]]\nname = \"candidate\"\nshare = 50\nmodel = \"", candidate,
                      "\"\n", "[promotion]\nvariant = \"candidate\"\nmetric = \"conversion\"\n",
                      "min_impressions = ", min_impressions, "\nmargin = 0.0\n");
}

class OnlineGateTest : public test::PlantedStoreServer {
 protected:
  // v000001 is the planted store's model (PlantedStoreServer); v000002 the same recipe trained
  // on another seed's store, whose taste it learned instead of this one's.
  void SetUp() override {
    PlantedStoreServer::SetUp();
    if (HasFatalFailure()) return;
    const tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
    ASSERT_OK_AND_ASSIGN(const GeneratedStore other,
                         GenerateStore(Planted(FeedbackKind::kImplicit, 77)));
    ASSERT_OK_AND_ASSIGN(const FactorModel bad, TrainModel(other.data, Training()));
    ASSERT_OK(SaveModel(bad, models_dir()).status());
    if (const char* seed = std::getenv("RECLOOP_AB_SEED")) seed_ = std::atoi(seed);
    if (const char* n = std::getenv("RECLOOP_AB_MIN_IMPRESSIONS")) min_impressions_ = std::atoi(n);
    ASSERT_GE(min_impressions_, 1);
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();  // the server first: its handler uses the members below
    api_.reset();
    retrainer_.reset();
    folder_.reset();
  }

  // Serves `live_version` with the experiment on `candidate`.
  void Start(const std::string& live_version, const std::string& candidate) {
    ASSERT_OK(SetCurrentVersion(models_dir(), live_version));
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    folder_ = std::make_unique<FeedbackFolder>(live_.get(), events_.get(), FeedbackOptions{},
                                               FoldQueueOptions{.threads = 1}, &metrics_);
    RetrainerOptions on_request;
    on_request.every_events = 0;
    on_request.every_minutes = 0;
    retrainer_ = std::make_unique<Retrainer>(live_.get(), events_.get(), folder_.get(), on_request);
    LiveModel* models = live_.get();
    experiment_ = std::make_unique<ExperimentHolder>(
        dir_.Write("ab.toml", ExperimentFile(candidate, min_impressions_)),
        [models](const std::string& v) { return models->Prepare(models->models_dir() + "/" + v); });
    ASSERT_OK(experiment_->Reload());
    ApiOptions options;
    options.api_key = "test-key";
    options.online_gate_every_ms = 5;  // decides close to min_impressions
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(),
                                             .metrics = &metrics_,
                                             .events = events_.get(),
                                             .folder = folder_.get(),
                                             .retrain = retrainer_.get(),
                                             .experiment = experiment_.get()},
                                 options);
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  // Shoppers visit in turn until the gate decides (or kMaxVisits): each asks for 10
  // recommendations and reads down the list, going on past each item with probability 0.7
  // (a cascade); an item of their own planted cluster that they read is clicked with
  // probability 0.5, and a click is a purchase with probability 0.5. Returns the report.
  json Simulate(test::Client& c) {
    std::mt19937_64 rng(seed_);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    json report;
    for (visits_ = 0; visits_ < kMaxVisits; ++visits_) {
      const int32_t u = visits_ % static_cast<int32_t>(store_.user_cluster.size());
      const std::string user = store_.data.users.External(u);
      const test::Reply r = c.Get("/v1/users/" + user + "/recommendations?n=10");
      EXPECT_EQ(r.status, 200) << r.body;
      if (r.status != 200) return report;
      const json list = r.Json();
      if (list.contains("variant") && list["variant"] == "candidate") {
        // The candidate's customers are served by its own version (the control's by the live
        // one, which a promotion may just have swapped).
        EXPECT_EQ(list["model_version"], candidate_);
      }
      const json& items = list["items"];
      for (size_t p = 0; p < items.size(); ++p) {
        const std::string item = items[p]["item"];
        if (ClusterOf(item) == store_.user_cluster[u] && unit(rng) < 0.5) {
          json events = json::array({{{"user", user},
                                      {"item", item},
                                      {"type", "click"},
                                      {"recommendation_id", list["recommendation_id"]}}});
          if (unit(rng) < 0.5) {
            events.push_back({{"user", user},
                              {"item", item},
                              {"type", "purchase"},
                              {"recommendation_id", list["recommendation_id"]}});
          }
          const test::Reply f =
              c.Send(http::verb::post, "/v1/feedback", events.dump(), "application/json", kAuth);
          EXPECT_EQ(f.status, 200) << f.body;
          break;
        }
        if (unit(rng) >= 0.7) break;
      }
      if (visits_ % 5 == 4) {
        report = c.Send(http::verb::get, "/v1/admin/experiments", "", "", kAuth).Json();
        if (report["promotion"]["state"] != "waiting") break;
      }
    }
    return report;
  }

  // The line tests/serving/run_online_ab.sh collects.
  void Print(const std::string& run, const json& report) const {
    const json& p = report["promotion"];
    std::printf(
        "simulated A/B: %s seed %d min %d: %s after %d visits (control %lld lists, candidate "
        "%lld): conversion %+.4f, lower bound %+.4f\n",
        run.c_str(), seed_, min_impressions_, p["state"].get<std::string>().c_str(), visits_,
        static_cast<long long>(p.value("control_impressions", int64_t{0})),
        static_cast<long long>(p.value("variant_impressions", int64_t{0})),
        p.value("difference", 0.0), p.value("lower_bound", 0.0));
  }

  // After a decision: `version` is live and `current`, and customers are served it with no
  // variant (the test has ended).
  void ExpectTheTestEndedOn(test::Client& c, const std::string& version) {
    EXPECT_EQ(c.Get("/v1/model").Json()["model_version"], version);
    EXPECT_EQ(std::filesystem::read_symlink(models_dir() + "/current").string(), version);
    for (int u = 0; u < 20; ++u) {
      const json list = c.Get("/v1/users/u" + std::to_string(u) + "/recommendations").Json();
      EXPECT_FALSE(list.contains("variant")) << list.dump();
      EXPECT_EQ(list["model_version"], version);
    }
  }

  int seed_ = 1;
  int min_impressions_ = kDefaultMinImpressions;
  int visits_ = 0;
  std::string live_version_, candidate_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<FeedbackFolder> folder_;
  std::unique_ptr<Retrainer> retrainer_;
  std::unique_ptr<ExperimentHolder> experiment_;
  std::unique_ptr<Api> api_;
};

TEST_F(OnlineGateTest, RefusesAWorseModelAndTheLiveOneStays) {
  live_version_ = "v000001";
  candidate_ = "v000002";
  ASSERT_NO_FATAL_FAILURE(Start(live_version_, candidate_));
  test::Client c(port());
  const json report = Simulate(c);
  Print("worse candidate", report);
  ASSERT_EQ(report["promotion"]["state"], "refused") << report.dump();
  EXPECT_GE(report["promotion"]["variant_impressions"].get<int64_t>(), min_impressions_);
  EXPECT_GE(report["promotion"]["control_impressions"].get<int64_t>(), min_impressions_);
  EXPECT_LT(report["promotion"]["lower_bound"].get<double>(), 0.0);
  // Counted by variant, the worse model earned fewer purchases per list.
  EXPECT_LT(report["variants"][1]["conversion"]["rate"].get<double>(),
            report["variants"][0]["conversion"]["rate"].get<double>());
  ExpectTheTestEndedOn(c, "v000001");
}

TEST_F(OnlineGateTest, PromotesABetterModelToEveryCustomer) {
  live_version_ = "v000002";
  candidate_ = "v000001";
  ASSERT_NO_FATAL_FAILURE(Start(live_version_, candidate_));
  test::Client c(port());
  const json report = Simulate(c);
  Print("better candidate", report);
  ASSERT_EQ(report["promotion"]["state"], "promoted") << report.dump();
  EXPECT_GE(report["promotion"]["lower_bound"].get<double>(), 0.0);
  // The promotion went through the swap: live, current and every customer's list.
  ExpectTheTestEndedOn(c, "v000001");
}

}  // namespace
}  // namespace recloop
