// A/B tests of serving (serving/experiment.h): the file's checks, assignment, the statistics
// against a reference computation, and a server with an experiment over real sockets.
#include "serving/experiment.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/live_model.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using json = nlohmann::json;
namespace http = boost::beast::http;

constexpr const char* kTwoVariants = R"(
name = "beam"
salt = "s1"
[[variant]]
name = "control"
share = 70
[[variant]]
name = "narrow"
share = 30
ef_search = 16
n = 4
)";

TEST(Experiment, ParsesVariantsAndRefusesBadFilesNamingThem) {
  ASSERT_OK_AND_ASSIGN(const Experiment x, Experiment::Parse(kTwoVariants, "ab.toml"));
  EXPECT_EQ(x.name, "beam");
  ASSERT_EQ(x.variants.size(), 2u);
  EXPECT_EQ(x.variants[1].name, "narrow");
  EXPECT_EQ(x.variants[1].ef_search, 16);
  EXPECT_EQ(x.variants[0].ef_search, 0);
  EXPECT_EQ(x.variants[1].n, 4);
  EXPECT_EQ(x.variants[0].n, 0);

  const std::map<std::string, std::string> bad = {
      {"name = \"x\"\nsalt = \n", "ab.toml:2:"},  // a syntax error: file and line
      {"salt = \"s\"\n[[variant]]\nname = \"a\"\nshare = 10\n", "'name'"},
      {"name = \"x\"\nsalt = \"s\"\n", "[[variant]]"},
      {"name = \"x\"\nsalt = \"s\"\n[[variant]]\nname = \"a\"\nshare = 60\n"
       "[[variant]]\nname = \"b\"\nshare = 50\n",
       "more than 100"},
      {"name = \"x\"\nsalt = \"s\"\n[[variant]]\nname = \"a\"\nshare = 10\n"
       "[[variant]]\nname = \"a\"\nshare = 10\n",
       "taken"},
      {"name = \"x\"\nsalt = \"s\"\n[[variant]]\nname = \"a\"\nshare = -1\n", "share"},
      {"name = \"x\"\nsalt = \"s\"\n[[variant]]\nname = \"a\"\nshare = 5\nef_search = \"64\"\n",
       "ef_search"},
      {"name = \"x\"\nsalt = \"s\"\ncolour = 1\n[[variant]]\nname = \"a\"\nshare = 5\n",
       "unknown key 'colour'"},
  };
  for (const auto& [text, expected] : bad) {
    const auto x = Experiment::Parse(text, "ab.toml");
    ASSERT_FALSE(x.ok()) << text;
    EXPECT_EQ(x.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(x.status().message().find("ab.toml"), std::string_view::npos) << x.status();
    EXPECT_NE(x.status().message().find(expected), std::string_view::npos) << x.status();
  }
}

// Deterministic, close to the shares over 10K users, and a ramp of the treatment moves control
// customers in without moving any treatment customer out.
TEST(Experiment, AssignmentIsDeterministicCloseToTheSharesAndStickyUnderARamp) {
  ASSERT_OK_AND_ASSIGN(const Experiment x, Experiment::Parse(kTwoVariants, "ab.toml"));
  std::string ramped_text = kTwoVariants;
  ramped_text.replace(ramped_text.find("share = 70"), 10, "share = 50");
  ramped_text.replace(ramped_text.find("share = 30"), 10, "share = 50");
  ASSERT_OK_AND_ASSIGN(const Experiment ramped, Experiment::Parse(ramped_text, "ab.toml"));
  int narrow = 0, narrow_then = 0, left_narrow = 0;
  for (int u = 0; u < 10'000; ++u) {
    const std::string user = "user" + std::to_string(u);
    const ExperimentVariant* v = x.Assign(user);
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(x.Assign(user), v);
    narrow += v->name == "narrow";
    const ExperimentVariant* w = ramped.Assign(user);
    narrow_then += w->name == "narrow";
    left_narrow += v->name == "narrow" && w->name != "narrow";
  }
  EXPECT_NEAR(narrow, 3000, 150);  // about 3.3 standard deviations of a binomial(10K, 0.3)
  EXPECT_NEAR(narrow_then, 5000, 150);
  EXPECT_EQ(left_narrow, 0);
  // Shares under 100: the rest is outside the test.
  std::string partial = kTwoVariants;
  partial.replace(partial.find("share = 70"), 10, "share = 0");
  ASSERT_OK_AND_ASSIGN(const Experiment p, Experiment::Parse(partial, "ab.toml"));
  int outside = 0;
  for (int u = 0; u < 10'000; ++u) outside += p.Assign("user" + std::to_string(u)) == nullptr;
  EXPECT_NEAR(outside, 7000, 150);
}

// Reference values from the textbook formulas, computed independently in Python
// (math.erfc for the normal tail).
TEST(Experiment, IntervalsAndTestMatchAReferenceComputation) {
  const Proportion p = WilsonInterval(50, 1000);
  EXPECT_DOUBLE_EQ(p.rate, 0.05);
  EXPECT_NEAR(p.low, 0.03813026239274882, 1e-12);
  EXPECT_NEAR(p.high, 0.06531382024425081, 1e-12);
  const Proportion none = WilsonInterval(0, 20);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_NEAR(none.high, 0.16112515805281938, 1e-12);
  const Proportion all = WilsonInterval(20, 20);
  EXPECT_NEAR(all.low, 0.8388748419471806, 1e-12);
  EXPECT_EQ(all.high, 1.0);
  EXPECT_EQ(WilsonInterval(0, 0).trials, 0);

  const ProportionTest t = TwoProportionTest(50, 1000, 70, 1000);
  EXPECT_NEAR(t.difference, 0.02, 1e-12);
  EXPECT_NEAR(t.z, 1.883108942886774, 1e-9);
  EXPECT_NEAR(t.p_value, 0.05968560553242625, 1e-9);
  EXPECT_EQ(TwoProportionTest(0, 0, 1, 10).p_value, 1.0);
}

// The online gate's rule: a one-sided 95% lower bound of the difference with the unpooled
// standard error (reference values from Python's math and statistics.NormalDist), decided only
// once both arms reached min_impressions.
TEST(Experiment, PromotionDecisionMatchesAReferenceComputation) {
  PromotionRule rule;
  rule.variant = "b";
  rule.min_impressions = 1000;
  const std::vector<VariantComparison> c =
      CompareVariants(std::vector<VariantTally>{{"a", 1000, 0, 0, 50}, {"b", 1000, 0, 0, 70}});
  PromotionDecision d = DecidePromotion(rule, c[0], c[1]);
  EXPECT_EQ(d.state, PromotionDecision::State::kPromote);
  EXPECT_NEAR(d.difference, 0.02, 1e-12);
  EXPECT_NEAR(d.lower_bound, 0.0025459405028187346, 1e-9);
  // 4.5% against 5%: refused without a margin, promoted with a margin of 2.5 points.
  const std::vector<VariantComparison> worse =
      CompareVariants(std::vector<VariantTally>{{"a", 1000, 0, 0, 50}, {"b", 1000, 0, 0, 45}});
  d = DecidePromotion(rule, worse[0], worse[1]);
  EXPECT_EQ(d.state, PromotionDecision::State::kRefuse);
  EXPECT_NEAR(d.lower_bound, -0.0206455758605838, 1e-9);
  rule.margin = 0.025;
  EXPECT_EQ(DecidePromotion(rule, worse[0], worse[1]).state, PromotionDecision::State::kPromote);
  // Too few lists on either side: waiting, whatever the rates.
  rule.min_impressions = 1001;
  EXPECT_EQ(DecidePromotion(rule, c[0], c[1]).state, PromotionDecision::State::kWaiting);
  // CTR is clicks per list.
  rule = PromotionRule{"b", "ctr", 10, 0.0};
  const std::vector<VariantComparison> clicks =
      CompareVariants(std::vector<VariantTally>{{"a", 100, 10, 0, 0}, {"b", 100, 40, 0, 0}});
  EXPECT_NEAR(DecidePromotion(rule, clicks[0], clicks[1]).difference, 0.3, 1e-12);
}

TEST(Experiment, PromotionAndModelVariantsAreCheckedNamingTheProblem) {
  const std::string two = std::string(kTwoVariants) + "model = \"v000002\"\n";
  ASSERT_OK_AND_ASSIGN(const Experiment x, Experiment::Parse(two, "ab.toml"));
  EXPECT_EQ(x.variants[1].model, "v000002");
  EXPECT_FALSE(x.promotion.has_value());
  const std::string gated = two + "[promotion]\nvariant = \"narrow\"\nmin_impressions = 500\n";
  ASSERT_OK_AND_ASSIGN(const Experiment g, Experiment::Parse(gated, "ab.toml"));
  ASSERT_TRUE(g.promotion.has_value());
  EXPECT_EQ(g.promotion->metric, "conversion");
  EXPECT_EQ(g.promotion->min_impressions, 500);
  EXPECT_EQ(g.promotion->margin, 0.0);
  const std::map<std::string, std::string> bad = {
      {std::string(kTwoVariants) + "model = \"../elsewhere\"\n", "'model'"},
      {two + "[promotion]\nvariant = \"control\"\n", "a treatment"},
      {std::string(kTwoVariants) + "[promotion]\nvariant = \"narrow\"\n", "no 'model'"},
      {two + "[promotion]\nvariant = \"narrow\"\nmetric = \"revenue\"\n", "'metric'"},
      {two + "[promotion]\nvariant = \"narrow\"\nmin_impressions = 0\n", "min_impressions"},
      {two + "[promotion]\nvariant = \"narrow\"\nmargin = -1\n", "'margin'"},
      {two + "[promotion]\nvariant = \"narrow\"\nafter = 3\n", "unknown key 'after'"},
  };
  for (const auto& [text, expected] : bad) {
    const auto e = Experiment::Parse(text, "ab.toml");
    ASSERT_FALSE(e.ok()) << text;
    EXPECT_NE(e.status().message().find(expected), std::string_view::npos) << e.status();
  }
  // A holder without a loader (no models directory) refuses a variant with a model.
  test::TempDir dir;
  ExperimentHolder holder(dir.Write("ab.toml", two));
  const absl::Status s = holder.Reload();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("narrow"), std::string_view::npos) << s;
}

// The gate's decision ends the test; a file with another name starts a new one.
TEST(Experiment, ADecisionEndsTheTestUntilAnotherOneIsLoaded) {
  test::TempDir dir;
  const std::string path = dir.Write("ab.toml", kTwoVariants);
  ExperimentHolder holder(path);
  ASSERT_OK(holder.Reload());
  EXPECT_NE(holder.Serving(), nullptr);
  holder.Decide({"beam", "narrow", "refused", "worse", -0.1, -0.2, 100, 100});
  holder.Decide({"beam", "narrow", "promoted", "", 0, 0, 0, 0});  // the first decision stands
  EXPECT_EQ(holder.Serving(), nullptr);
  ASSERT_NE(holder.Get(), nullptr);  // still reported
  EXPECT_EQ(holder.outcome()->state, "refused");
  ASSERT_OK(holder.Reload());  // the same test: still decided
  EXPECT_EQ(holder.Serving(), nullptr);
  std::string renamed = kTwoVariants;
  renamed.replace(renamed.find("\"beam\""), 6, "\"wide\"");
  dir.Write("ab.toml", renamed);
  ASSERT_OK(holder.Reload());
  EXPECT_NE(holder.Serving(), nullptr);
  EXPECT_FALSE(holder.outcome().has_value());
}

// SIGHUP's reload: a good file replaces the experiment, a bad one keeps it.
TEST(Experiment, AReloadWithABadFileKeepsTheExperimentInForce) {
  test::TempDir dir;
  const std::string path = dir.Write("ab.toml", kTwoVariants);
  ExperimentHolder holder(path);
  EXPECT_EQ(holder.Get(), nullptr);
  ASSERT_OK(holder.Reload());
  dir.Write("ab.toml", "name = \"broken\"\nsalt = ");
  EXPECT_EQ(holder.Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(holder.Get()->name, "beam");
  std::string renamed = kTwoVariants;
  renamed.replace(renamed.find("\"beam\""), 6, "\"wide\"");
  dir.Write("ab.toml", renamed);
  ASSERT_OK(holder.Reload());
  EXPECT_EQ(holder.Get()->name, "wide");
}

class ExperimentServerTest : public test::PlantedStoreServer {
 protected:
  void SetUp() override {
    PlantedStoreServer::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    const std::string path = dir_.Write("ab.toml", kTwoVariants);
    experiment_ = std::make_unique<ExperimentHolder>(path);
    ASSERT_OK(experiment_->Reload());
    ApiOptions options;
    options.api_key = "test-key";
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(),
                                             .metrics = &metrics_,
                                             .events = events_.get(),
                                             .experiment = experiment_.get()},
                                 options);
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();
    api_.reset();
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<ExperimentHolder> experiment_;
  std::unique_ptr<Api> api_;
};

// Over HTTP: each response names the customer's variant, the same on every request and equal
// to Assign's; the shares hold over the customers asked; clicks are counted per variant and
// GET /v1/admin/experiments reports them with their intervals and the test against control.
TEST_F(ExperimentServerTest, ResponsesCarryTheStickyVariantAndTheReportCountsIt) {
  test::Client c(server_->port());
  ASSERT_OK_AND_ASSIGN(const Experiment x, Experiment::Parse(kTwoVariants, "ab.toml"));
  constexpr int kUsers = 10'000;
  int narrow = 0;
  std::map<std::string, int> clicks;
  for (int u = 0; u < kUsers; ++u) {
    const std::string user = "shopper" + std::to_string(u);
    test::Reply r = c.Get("/v1/users/" + user + "/recommendations?n=3");
    ASSERT_EQ(r.status, 200) << r.body;
    const json list = r.Json();
    const std::string variant = list["variant"];
    ASSERT_EQ(variant, x.Assign(user)->name) << user;
    narrow += variant == "narrow";
    if (u < 20) {  // sticky: asked again, the same variant
      EXPECT_EQ(c.Get("/v1/users/" + user + "/recommendations?n=3").Json()["variant"], variant);
    }
    if (u % 50 == 0) {  // every fiftieth customer clicks the second item
      const json events = json::array({{{"user", user},
                                        {"item", list["items"][1]["item"]},
                                        {"type", "click"},
                                        {"recommendation_id", list["recommendation_id"]}}});
      r = c.Send(http::verb::post, "/v1/feedback", events.dump(), "application/json",
                 "Bearer test-key");
      ASSERT_EQ(r.status, 200) << r.body;
      ++clicks[variant];
    }
  }
  EXPECT_NEAR(narrow, 3000, 180);  // 30% of 10,000, within about 3.9 standard deviations

  EXPECT_EQ(c.Get("/v1/admin/experiments").status, 401);
  const test::Reply r = c.Send(http::verb::get, "/v1/admin/experiments", "", "", "Bearer test-key");
  ASSERT_EQ(r.status, 200) << r.body;
  const json report = r.Json();
  EXPECT_EQ(report["experiment"], "beam");
  EXPECT_EQ(report["control"], "control");
  ASSERT_EQ(report["variants"].size(), 2u);
  int64_t impressions = 0;
  for (const json& v : report["variants"]) {
    const std::string name = v["name"];
    impressions += v["impressions"].get<int64_t>();
    EXPECT_EQ(v["clicks"], clicks[name]) << name;
    const Proportion expected = WilsonInterval(clicks[name], v["impressions"]);
    EXPECT_DOUBLE_EQ(v["ctr"]["low"].get<double>(), expected.low);
    EXPECT_DOUBLE_EQ(v["ctr"]["high"].get<double>(), expected.high);
    EXPECT_EQ(v.contains("vs_control"), name != "control");
  }
  EXPECT_EQ(impressions, kUsers + 20);
  const json& treated = report["variants"][1];
  const json& control = report["variants"][0];
  const ProportionTest t = TwoProportionTest(control["clicks"], control["impressions"],
                                             treated["clicks"], treated["impressions"]);
  EXPECT_DOUBLE_EQ(treated["vs_control"]["ctr"]["p_value"].get<double>(), t.p_value);

  // /metrics carries the same figures (to the digits absl::StrCat prints: 6 significant).
  const std::string metrics = c.Get("/metrics").body;
  const std::string low =
      absl::StrCat(R"(recloop_experiment_ctr{experiment="beam",variant="narrow",bound="low"} )",
                   treated["ctr"]["low"].get<double>());
  EXPECT_NE(metrics.find(low + "\n"), std::string::npos) << low << "\n" << metrics;
  const std::string p = absl::StrCat(
      R"(recloop_experiment_p_value{experiment="beam",variant="narrow",metric="ctr"} )", t.p_value);
  EXPECT_NE(metrics.find(p + "\n"), std::string::npos) << p;
  EXPECT_EQ(metrics.find(R"(recloop_experiment_p_value{experiment="beam",variant="control")"),
            std::string::npos);
  // A variant's own list length applies when a request names none; a request's n wins.
  for (int u = 0; u < 40; ++u) {
    const std::string user = "shopper" + std::to_string(u);
    const bool in_narrow = x.Assign(user)->name == "narrow";
    EXPECT_EQ(c.Get("/v1/users/" + user + "/recommendations").Json()["items"].size(),
              in_narrow ? 4u : 10u);
    EXPECT_EQ(c.Get("/v1/users/" + user + "/recommendations?n=6").Json()["items"].size(), 6u);
  }
}

TEST_F(ExperimentServerTest, AServerWithoutAnExperimentAnswers404) {
  ApiOptions options;
  options.api_key = "test-key";
  Api bare(ApiServices{.live = live_.get(), .metrics = &metrics_}, options);
  HttpRequest req;
  req.method = "GET";
  req.target = "/v1/admin/experiments";
  req.headers.emplace_back("Authorization", "Bearer test-key");
  const HttpResponse res = bare.Handle(req);
  EXPECT_EQ(res.status, 404) << res.body;
  EXPECT_NE(res.body.find("no_experiment"), std::string::npos);
}

}  // namespace
}  // namespace recloop
