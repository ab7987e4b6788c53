// `recloop tune`: search spaces, trial sampling, metric selection and the config file it writes
// (called directly), then the command end to end on a small generated store, its config file
// read back by `recloop train --config`.
#include "training/tune.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tests/tools/cli_runner.h"

namespace recloop {
namespace {

using nlohmann::json;

SearchSpace MustParse(const std::string& text) {
  auto space = ParseSearchSpace(json::parse(text), "space.json");
  EXPECT_TRUE(space.ok()) << space.status();
  return space.ok() ? *space : SearchSpace{};
}

// The error of parsing `text`, or "" if it parsed.
std::string ParseError(const std::string& text) {
  auto space = ParseSearchSpace(json::parse(text), "space.json");
  return space.ok() ? "" : std::string(space.status().message());
}

TrainOptions ExplicitAls() {
  TrainOptions o;
  o.algorithm = Algorithm::kAls;
  o.feedback = FeedbackKind::kExplicit;
  return o;
}

TEST(SearchSpace, ParsesValueListsAndRangesInCanonicalOrder) {
  const SearchSpace space = MustParse(R"({
      "iterations": {"min": 5, "max": 30},
      "bias-regularization": [0.01, 0.1],
      "regularization": {"min": 0.02, "max": 0.5, "log": true},
      "factors": {"values": [16, 32, 64]}})");
  ASSERT_EQ(space.params.size(), 4u);
  // The table order (factors, iterations, regularization, bias-regularization), not the file's.
  EXPECT_EQ(space.params[0].name, "factors");
  EXPECT_EQ(space.params[0].values, (std::vector<double>{16, 32, 64}));
  EXPECT_EQ(space.params[1].name, "iterations");
  EXPECT_TRUE(space.params[1].values.empty());
  EXPECT_EQ(space.params[1].min, 5);
  EXPECT_EQ(space.params[1].max, 30);
  EXPECT_TRUE(space.params[1].integer) << "iterations is an integer parameter without \"int\"";
  EXPECT_EQ(space.params[2].name, "regularization");
  EXPECT_TRUE(space.params[2].log);
  EXPECT_FALSE(space.params[2].integer);
  EXPECT_EQ(space.params[3].name, "bias-regularization");
  EXPECT_EQ(space.params[3].values, (std::vector<double>{0.01, 0.1}));
}

TEST(SearchSpace, BadFilesNameTheFileAndTheParameter) {
  struct Case {
    const char* text;
    const char* param;  // named in the message
    const char* what;   // and this
  };
  const Case cases[] = {
      {R"({"factorz": [8]})", "factorz", "unknown parameter"},
      {R"({"factors": {"vals": [8]}})", "factors", "unknown field 'vals'"},
      {R"({"regularization": {"min": 0.5, "max": 0.1}})", "regularization", "greater than max"},
      {R"({"regularization": {"min": 0, "max": 1, "log": true}})", "regularization", "min > 0"},
      {R"({"regularization": {"min": 0.1}})", "regularization", "both \"min\" and \"max\""},
      {R"({"factors": {"values": []}})", "factors", "non-empty"},
      {R"({"factors": [8, "sixteen"]})", "factors", "must be a number"},
      {R"({"factors": [8, 12.5]})", "factors", "not an integer"},
      {R"({"iterations": {"min": 2.2, "max": 2.8}})", "iterations", "no integer"},
      {R"({"alpha": {"values": [1], "min": 0.1, "max": 2}})", "alpha", "either"},
      {R"({"alpha": {"min": 0.1, "max": 2, "log": "yes"}})", "alpha", "true or false"},
      {R"({"alpha": 3})", "alpha", "expected"},
  };
  for (const Case& c : cases) {
    const std::string error = ParseError(c.text);
    EXPECT_EQ(error.rfind("space.json: ", 0), 0u) << c.text << " -> " << error;
    EXPECT_NE(error.find(std::string("'") + c.param + "'"), std::string::npos)
        << c.text << " -> " << error;
    EXPECT_NE(error.find(c.what), std::string::npos) << c.text << " -> " << error;
  }
  EXPECT_NE(ParseError(R"([1, 2])").find("JSON object"), std::string::npos);
  EXPECT_NE(ParseError(R"({})").find("no parameters"), std::string::npos);
}

TEST(SearchSpace, ReadsFilesAndReportsUnreadableOnes) {
  test::TempDir dir;
  const std::string good = dir.Write("good.json", R"({"factors": [8, 16]})");
  ASSERT_OK_AND_ASSIGN(SearchSpace space, ReadSearchSpace(good));
  EXPECT_EQ(space.params.size(), 1u);
  const std::string bad = dir.Write("bad.json", R"({"factors": [8, 16])");
  auto parsed = ReadSearchSpace(bad);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find(bad), std::string::npos) << parsed.status();
  parsed = ReadSearchSpace(dir.File("missing.json"));
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(absl::IsNotFound(parsed.status())) << parsed.status();
}

TEST(SearchSpace, DefaultsPerAlgorithm) {
  ASSERT_OK_AND_ASSIGN(SearchSpace e, DefaultSearchSpace(Algorithm::kAls, FeedbackKind::kExplicit));
  std::vector<std::string> names;
  for (const auto& p : e.params) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"factors", "iterations", "regularization",
                                             "bias-regularization"}));
  EXPECT_OK(CheckSearchSpace(e, ExplicitAls(), "default"));

  ASSERT_OK_AND_ASSIGN(SearchSpace i, DefaultSearchSpace(Algorithm::kAls, FeedbackKind::kImplicit));
  names.clear();
  for (const auto& p : i.params) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"factors", "iterations", "regularization", "alpha"}));
  TrainOptions implicit;
  implicit.feedback = FeedbackKind::kImplicit;
  EXPECT_OK(CheckSearchSpace(i, implicit, "default"));

  ASSERT_OK_AND_ASSIGN(SearchSpace b, DefaultSearchSpace(Algorithm::kBpmf, FeedbackKind::kExplicit));
  names.clear();
  for (const auto& p : b.params) names.push_back(p.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"factors", "user-noise-dof", "item-noise-dof"}));
  TrainOptions bpmf;
  bpmf.algorithm = Algorithm::kBpmf;
  EXPECT_OK(CheckSearchSpace(b, bpmf, "default"));
  // ALS's knobs do not apply to BPMF, and its own are checked by its validation.
  EXPECT_FALSE(CheckSearchSpace(MustParse(R"({"regularization": [0.1]})"), bpmf, "s").ok());
  const absl::Status served =
      CheckSearchSpace(MustParse(R"({"served-samples": [1000]})"), bpmf, "s");
  EXPECT_NE(served.message().find("served samples"), std::string::npos) << served;

  auto popular = DefaultSearchSpace(Algorithm::kPopular, FeedbackKind::kExplicit);
  ASSERT_FALSE(popular.ok());
  EXPECT_NE(popular.status().message().find("popular has no hyper-parameters"), std::string::npos)
      << popular.status();
}

TEST(SearchSpace, CheckRefusesParametersTheModelIgnoresAndInvalidValues) {
  absl::Status s = CheckSearchSpace(MustParse(R"({"alpha": [1, 2]})"), ExplicitAls(), "s.json");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("s.json: parameter 'alpha': does not apply to explicit als"),
            std::string::npos)
      << s;
  s = CheckSearchSpace(MustParse(R"({"factors": {"min": 0, "max": 8}})"), ExplicitAls(), "s.json");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'factors': value 0"), std::string::npos) << s;
  TrainOptions popular;
  popular.algorithm = Algorithm::kPopular;
  EXPECT_OK(CheckSearchSpace(MustParse(R"({"popularity-half-life": [0, 30]})"), popular, "s"));
  EXPECT_FALSE(CheckSearchSpace(MustParse(R"({"factors": [8]})"), popular, "s").ok());
}

TEST(SearchSpace, ConfigOfResolvesDefaultsAndApplyConfigSetsFields) {
  const SearchSpace space = MustParse(
      R"({"factors": [8], "iterations": [3], "regularization": [1], "bias-regularization": [1]})");
  EXPECT_EQ(ConfigOf(space, ExplicitAls()),
            (TrialConfig{64, 15, kDefaultExplicitRegularization, 0.1f}));
  const TrainOptions o = ApplyConfig(space, {8, 3, 0.25, 0.5}, ExplicitAls());
  EXPECT_EQ(o.als.factors, 8);
  EXPECT_EQ(o.als.iterations, 3);
  EXPECT_EQ(o.als.regularization, 0.25f);
  EXPECT_EQ(o.als.bias_regularization, 0.5f);
  TrainOptions implicit;
  implicit.feedback = FeedbackKind::kImplicit;
  EXPECT_EQ(ConfigOf(MustParse(R"({"regularization": [1]})"), implicit),
            (TrialConfig{kDefaultImplicitRegularization}));
}

TEST(SampleTrials, RandomIsSeededStartsWithTheDefaultsAndStaysInTheSpace) {
  const SearchSpace space = MustParse(R"({
      "factors": {"values": [16, 32, 64]},
      "iterations": {"min": 5, "max": 30, "int": true},
      "regularization": {"min": 0.02, "max": 0.5, "log": true},
      "bias-regularization": {"min": 0.01, "max": 1}})");
  const TrialConfig defaults = ConfigOf(space, ExplicitAls());
  const auto a = SampleTrials(space, SearchKind::kRandom, 30, 7, defaults);
  ASSERT_EQ(a.size(), 30u);
  EXPECT_EQ(a[0], defaults);
  EXPECT_EQ(SampleTrials(space, SearchKind::kRandom, 30, 7, defaults), a);
  EXPECT_NE(SampleTrials(space, SearchKind::kRandom, 30, 8, defaults), a);
  std::set<TrialConfig> distinct(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), a.size());
  double smallest_reg = 1, largest_reg = 0;
  for (size_t t = 1; t < a.size(); ++t) {
    const TrialConfig& c = a[t];
    ASSERT_EQ(c.size(), 4u);
    EXPECT_TRUE(c[0] == 16 || c[0] == 32 || c[0] == 64) << c[0];
    EXPECT_EQ(c[1], std::floor(c[1]));
    EXPECT_GE(c[1], 5);
    EXPECT_LE(c[1], 30);
    EXPECT_GE(c[2], 0.02);
    EXPECT_LE(c[2], 0.5);
    EXPECT_GE(c[3], 0.01);
    EXPECT_LE(c[3], 1);
    smallest_reg = std::min(smallest_reg, c[2]);
    largest_reg = std::max(largest_reg, c[2]);
  }
  // Log-uniform: both decades of [0.02, 0.5] are visited.
  EXPECT_LT(smallest_reg, 0.06);
  EXPECT_GT(largest_reg, 0.15);
}

TEST(SampleTrials, RandomStopsWhenTheSpaceRunsOut) {
  const SearchSpace space = MustParse(R"({"factors": [8, 16], "iterations": [3]})");
  const auto trials = SampleTrials(space, SearchKind::kRandom, 10, 1, {64, 15});
  EXPECT_EQ(trials.size(), 3u);  // the defaults and the two configurations of the space
  EXPECT_EQ(SampleTrials(space, SearchKind::kRandom, 1, 1, {64, 15}).size(), 1u);
}

TEST(SampleTrials, GridIsTheCartesianProductInOrderWithoutTheDefaults) {
  const SearchSpace space =
      MustParse(R"({"factors": [8, 16], "regularization": {"min": 0.01, "max": 1, "log": true}})");
  // A range becomes kGridPointsPerRange log-spaced points with the ends as written.
  const TrialConfig defaults = {16, 0.0464};  // on the grid: not run twice
  const auto g = SampleTrials(space, SearchKind::kGrid, 100, 3, defaults);
  ASSERT_EQ(g.size(), 8u);  // the defaults + 2 x 4 - 1
  EXPECT_EQ(g[0], defaults);
  const std::vector<TrialConfig> expected = {{8, 0.01},  {8, 0.0464},  {8, 0.215},  {8, 1},
                                             {16, 0.01}, {16, 0.0464}, {16, 0.215}, {16, 1}};
  std::vector<TrialConfig> rest(g.begin() + 1, g.end());
  std::vector<TrialConfig> want;
  for (const auto& c : expected) {
    if (c != defaults) want.push_back(c);
  }
  EXPECT_EQ(rest, want);
  // Defaults off the grid: every grid point runs.
  EXPECT_EQ(SampleTrials(space, SearchKind::kGrid, 100, 3, {16, 0.1}).size(), 9u);
}

TEST(SampleTrials, GridLargerThanTheBudgetIsShuffledWithTheSeedAndCut) {
  const SearchSpace space = MustParse(R"({
      "factors": [4, 8, 16, 32, 64],
      "iterations": {"min": 1, "max": 40},
      "regularization": {"min": 0.01, "max": 1, "log": true}})");
  const TrialConfig defaults = {64, 15, 0.12};
  const auto a = SampleTrials(space, SearchKind::kGrid, 12, 5, defaults);
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(a[0], defaults);
  EXPECT_EQ(SampleTrials(space, SearchKind::kGrid, 12, 5, defaults), a);
  EXPECT_NE(SampleTrials(space, SearchKind::kGrid, 12, 6, defaults), a);
  std::set<TrialConfig> distinct(a.begin(), a.end());
  EXPECT_EQ(distinct.size(), a.size());
  for (size_t t = 1; t < a.size(); ++t) {
    EXPECT_NE(std::find(space.params[0].values.begin(), space.params[0].values.end(), a[t][0]),
              space.params[0].values.end());
    // iterations' four grid points: 1, 14, 27, 40.
    EXPECT_TRUE(a[t][1] == 1 || a[t][1] == 14 || a[t][1] == 27 || a[t][1] == 40) << a[t][1];
  }
}

TEST(TuneMetric, ParsesDirectionAndCutoff) {
  ASSERT_OK_AND_ASSIGN(TuneMetric rmse, ParseTuneMetric("rmse", FeedbackKind::kExplicit));
  EXPECT_TRUE(rmse.lower_is_better);
  EXPECT_TRUE(rmse.Better(0.9, 0.91));
  ASSERT_OK_AND_ASSIGN(TuneMetric ndcg, ParseTuneMetric("ndcg@10", FeedbackKind::kImplicit));
  EXPECT_EQ(ndcg.key, "ndcg@10");
  EXPECT_EQ(ndcg.k, 10);
  EXPECT_FALSE(ndcg.lower_is_better);
  EXPECT_TRUE(ndcg.Better(0.3, 0.2));
  ASSERT_OK_AND_ASSIGN(TuneMetric recall, ParseTuneMetric("recall@20", FeedbackKind::kExplicit));
  EXPECT_EQ(recall.k, 20);
  EXPECT_EQ(recall.key, "recall@20");
  EXPECT_FALSE(ParseTuneMetric("rmse", FeedbackKind::kImplicit).ok());
  EXPECT_FALSE(ParseTuneMetric("ndcg@0", FeedbackKind::kImplicit).ok());
  EXPECT_FALSE(ParseTuneMetric("ndcg@x", FeedbackKind::kImplicit).ok());
  EXPECT_FALSE(ParseTuneMetric("users", FeedbackKind::kImplicit).ok());
  EXPECT_FALSE(ParseTuneMetric("rmse@10", FeedbackKind::kExplicit).ok());

  EvalResult result;
  result.k = 20;
  result.recall = 0.25;
  result.rmse = 0.9;
  EXPECT_EQ(*MetricValue(result, recall), 0.25);
  EXPECT_EQ(*MetricValue(result, rmse), 0.9);
  result.rmse.reset();
  EXPECT_FALSE(MetricValue(result, rmse).ok());
}

TEST(TrainConfig, KeysAreTheLongFlagsAndValuesReadBackExactly) {
  const SearchSpace space = MustParse(R"({"factors": [8], "bias-regularization": [0.05],
                                          "regularization": [0.1]})");
  ASSERT_OK_AND_ASSIGN(TuneMetric ndcg, ParseTuneMetric("ndcg@20", FeedbackKind::kExplicit));
  TrainOptions base = ExplicitAls();
  base.als.seed = 9;
  const std::string toml =
      TrainConfigToml(space, {32, 0.0523, 0.05}, base, ndcg, "line one\nline two");
  EXPECT_EQ(toml,
            "# line one\n# line two\n[train]\nalgorithm = \"als\"\nfeedback = \"explicit\"\n"
            "seed = 9\nk = 20\nfactors = 32\nregularization = 0.0523\n"
            "bias-regularization = 0.05\n");
  // Float fields print the fewest digits that read back as the same float.
  for (double v : {0.1, 0.123456789, 1.0 / 3, 123.456, 7e-5, 0.12f + 0.0}) {
    const std::string s = FormatParamValue("regularization", v);
    EXPECT_EQ(std::strtof(s.c_str(), nullptr), static_cast<float>(v)) << s;
  }
  EXPECT_EQ(FormatParamValue("regularization", 0.12f), "0.12");
  EXPECT_EQ(FormatParamValue("factors", 64), "64");
  EXPECT_EQ(FormatParamValue("popularity-half-life", 1.0 / 3),
            "0.3333333333333333");  // a double field
}

// The command end to end, as a user runs it.
class TuneCli : public ::testing::Test {
 protected:
  using Result = test::CliResult;

  Result Run(const std::string& args) { return test::RunRecloop(args, dir_.File("stderr.txt")); }

  static std::string ReadFile(const std::string& path) { return test::ReadWholeFile(path); }

  // The whitespace-separated fields of each line of `text`.
  static std::vector<std::vector<std::string>> Rows(const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream fields(line);
      std::vector<std::string> row;
      for (std::string f; fields >> f;) row.push_back(f);
      rows.push_back(row);
    }
    return rows;
  }

  test::TempDir dir_;
};

TEST_F(TuneCli, RanksTrialsWritesAConfigThatTrainAccepts) {
  const std::string data = dir_.File("store.csv");
  ASSERT_EQ(
      Run("generate --users 300 --items 200 --interactions 8000 --feedback explicit --out " + data)
          .exit_code,
      0);
  const std::string space = dir_.Write("space.json", R"({
      "factors": {"values": [4, 8]},
      "iterations": {"min": 2, "max": 5, "int": true},
      "regularization": {"min": 0.05, "max": 0.3, "log": true}})");
  const std::string config = dir_.File("best.toml");
  const Result r = Run("tune --data " + data + " --algorithm als --space " + space +
                       " --trials 6 --split random:0.2 --seed 3 --metric rmse --out " + config);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("6/6"), std::string::npos) << "progress bar: " << r.err;
  // stderr is a file here, not a terminal: progress lines, no carriage-return redraws.
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;

  // The table: a header, six ranked trials sorted by RMSE (lowest first), then "best:".
  const auto rows = Rows(r.out);
  ASSERT_GE(rows.size(), 8u) << r.out;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"rank", "trial", "factors", "iterations",
                                               "regularization", "rmse", "seconds"}));
  std::set<int> trials;
  double previous = 0;
  int best_trial = -1;
  for (int rank = 1; rank <= 6; ++rank) {
    const auto& row = rows[rank];
    ASSERT_GE(row.size(), 7u) << r.out;
    EXPECT_EQ(row[0], std::to_string(rank));
    const int trial = std::stoi(row[1]);
    trials.insert(trial);
    if (rank == 1) best_trial = trial;
    const double rmse = std::stod(row[5]);
    EXPECT_GE(rmse, previous) << r.out;
    previous = rmse;
    if (trial == 0) {
      // Trial 0 is the defaults of explicit ALS.
      EXPECT_EQ(row[2], "64");
      EXPECT_EQ(row[3], "15");
      EXPECT_EQ(row[4], "0.12");
      EXPECT_EQ(row.back(), "defaults");
    } else {
      EXPECT_TRUE(row[2] == "4" || row[2] == "8") << row[2];
      const int iterations = std::stoi(row[3]);
      EXPECT_GE(iterations, 2);
      EXPECT_LE(iterations, 5);
    }
  }
  EXPECT_EQ(trials, (std::set<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(rows[7][0], "best:");
  EXPECT_EQ(rows[7][2], std::to_string(best_trial));

  // The config file holds the best row's values under [train].
  const std::string toml = ReadFile(config);
  EXPECT_NE(toml.find("[train]\nalgorithm = \"als\"\nfeedback = \"explicit\"\nseed = 3\n"),
            std::string::npos)
      << toml;
  const auto& best = rows[1];
  EXPECT_NE(toml.find("factors = " + best[2] + "\n"), std::string::npos) << toml;
  EXPECT_NE(toml.find("iterations = " + best[3] + "\n"), std::string::npos) << toml;
  EXPECT_NE(toml.find("regularization = " + best[4] + "\n"), std::string::npos) << toml;

  // `recloop train --config` trains with them: the saved model's parameters say so.
  const std::string models = dir_.File("models");
  Result t = Run("train --config " + config + " --data " + data +
                 " --split random:0.2 --quiet --json --out " + models);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  Result info = Run("model info " + models + " --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  json params = json::parse(info.out)["params"];
  EXPECT_EQ(params["algorithm"], "als");
  EXPECT_EQ(params["factors"].get<int>(), std::stoi(best[2]));
  EXPECT_EQ(params["iterations"].get<int>(), std::stoi(best[3]));
  EXPECT_FLOAT_EQ(params["regularization"].get<float>(), std::stof(best[4]));
  EXPECT_EQ(params["seed"].dump(), "\"3\"");

  // The same split and seed as the tuning run's validation: the same RMSE as its table.
  EXPECT_NEAR(json::parse(t.out)["rmse"].get<double>(), std::stod(best[5]), 1e-5) << t.out;

  // Flags on the command line win over the file.
  Result w =
      Run("train --data " + data + " --config " + config + " --factors 3 --quiet --out " + models);
  ASSERT_EQ(w.exit_code, 0) << w.err;
  info = Run("model info " + models + " --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  params = json::parse(info.out)["params"];
  EXPECT_EQ(params["factors"].get<int>(), 3);
  EXPECT_EQ(params["iterations"].get<int>(), std::stoi(best[3]));
}

TEST_F(TuneCli, TestFileIsReportedForTheBestAndTheDefaults) {
  const std::string data = dir_.File("store.csv");
  const std::string test = dir_.File("test.csv");
  ASSERT_EQ(
      Run("generate --users 200 --items 150 --interactions 5000 --feedback implicit --out " + data)
          .exit_code,
      0);
  ASSERT_EQ(Run("generate --users 200 --items 150 --interactions 1000 --seed 9 "
                "--feedback implicit --out " +
                test)
                .exit_code,
            0);
  const std::string space =
      dir_.Write("space.json", R"({"factors": [4, 8], "alpha": {"min": 0.5, "max": 4}})");
  const Result r = Run("tune --data " + data + " --test " + test + " --feedback implicit --space " +
                       space + " --search grid --trials 4 --quiet --out " + dir_.File("b.toml"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << "--quiet: " << r.err;
  EXPECT_NE(r.out.find("ndcg@10"), std::string::npos) << r.out;  // implicit's default metric
  EXPECT_NE(r.out.find("defaults (trial 0)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best (trial "), std::string::npos) << r.out;
  EXPECT_NE(ReadFile(dir_.File("b.toml")).find("k = 10\n"), std::string::npos);
}

// BPMF is tuned like any model, and the config it writes trains the same BPMF model.
TEST_F(TuneCli, TunesBpmfAndTrainReproducesTheBestTrial) {
  const std::string data = dir_.File("ratings.csv");
  ASSERT_EQ(Run("generate --users 150 --items 100 --interactions 4000 --feedback explicit --out " +
                data)
                .exit_code,
            0);
  const std::string space = dir_.Write(
      "space.json",
      R"({"factors": [2, 4], "item-noise-dof": [3, 30], "burn-in": [10], "samples": [20],
          "served-samples": [5]})");
  const std::string config = dir_.File("bpmf.toml");
  const Result r = Run("tune --data " + data + " --algorithm bpmf --space " + space +
                       " --search grid --trials 5 --split random:0.2 --seed 3 --quiet "
                       "--metric rmse --out " +
                       config);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = Rows(r.out);
  ASSERT_GE(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"rank", "trial", "factors", "burn-in", "samples",
                                               "served-samples", "item-noise-dof", "rmse",
                                               "seconds"}));
  const double best_rmse = std::stod(rows[1][7]);
  const std::string toml = ReadFile(config);
  EXPECT_NE(toml.find("algorithm = \"bpmf\""), std::string::npos) << toml;
  EXPECT_NE(toml.find("factors = " + rows[1][2] + "\n"), std::string::npos) << toml;

  // Training from the config on the same split (same seed) is the best trial again: the same
  // chain, the same validation RMSE, and the model says what it was trained with.
  const std::string models = dir_.File("models");
  const Result t = Run("train --config " + config + " --data " + data +
                       " --split random:0.2 --json --quiet --out " + models);
  ASSERT_EQ(t.exit_code, 0) << t.err;
  const json trained = test::LastJsonLine(t.out);
  EXPECT_EQ(trained["algorithm"], "bpmf");
  EXPECT_NEAR(trained["rmse"].get<double>(), best_rmse, 1e-4) << r.out;
  const Result info = Run("model info " + models + " --json");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const json params = json::parse(info.out)["params"];
  EXPECT_EQ(params["algorithm"], "bpmf");
  EXPECT_EQ(params["factors"].get<int>(), std::stoi(rows[1][2]));
  EXPECT_FLOAT_EQ(params["item_noise_dof"].get<float>(), std::stof(rows[1][6]));
  EXPECT_EQ(params["samples"].get<int>(), std::stoi(rows[1][4]));
  EXPECT_EQ(params["served_samples"].get<int>(), std::stoi(rows[1][5]));
}

TEST_F(TuneCli, UsageErrorsNameTheProblem) {
  const std::string data = dir_.Write("d.csv", "user,item,rating\na,x,4\nb,x,3\na,y,5\n");
  const std::string space = dir_.Write("space.json", R"({"factors": [8], "alpha": [1]})");
  Result r = Run("tune --data " + data + " --algorithm als --space " + space);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(space + ": parameter 'alpha': does not apply to explicit als"),
            std::string::npos)
      << r.err;
  // Without --algorithm, explicit ratings tune BPMF, the rating predictor.
  r = Run("tune --data " + data + " --space " + space);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'alpha': does not apply to bpmf"), std::string::npos) << r.err;
  r = Run("tune --data " + data + " --metric ndcg@zero");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ndcg@zero"), std::string::npos) << r.err;
  r = Run("tune --data " + data + " --algorithm popular");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("popular has no hyper-parameters to tune"), std::string::npos) << r.err;
  r = Run("tune --data " + data + " --search sideways");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("sideways"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace recloop
