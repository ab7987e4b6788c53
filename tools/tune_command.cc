// `recloop tune`: hyper-parameter search (training/tune.h) on a validation split of --data; the
// ranked trials on stdout, the best written as a `recloop train --config` file.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "base/timer.h"
#include "data/split.h"
#include "engine/status_macros.h"
#include "tbb/parallel_invoke.h"
#include "tools/subcommands.h"
#include "training/pipeline.h"
#include "training/tune.h"

namespace recloop {
namespace {

struct TuneCommand {
  std::string data;                  // the training file; validation is split off it
  std::string split = "random:0.1";  // how (data/split.h), seeded by `seed`
  // Optional: after the search, the best configuration and the defaults are both retrained on
  // all of `data` and evaluated on this file. Reported only, never used to choose.
  std::string test;
  InputFlags input;
  std::string algorithm;  // empty: as `recloop train` (bpmf explicit, als implicit)
  std::string feedback = "auto";  // explicit, implicit or auto (data/feedback_guess.h)
  std::string metric;  // see ParseTuneMetric; empty: rmse (explicit) or ndcg@10 (implicit)
  int trials = 20;     // including trial 0, the defaults
  std::string search = "random";  // random or grid
  std::string space;              // JSON search space file; empty: DefaultSearchSpace
  uint64_t seed = 42;             // the split, the sampling and every trial's initial factors
  std::string out = "best.toml";  // the best configuration, as `recloop train --config` reads it
  bool quiet = false;             // no progress bar or read lines on stderr
};

// The progress bar on stderr, redrawn as trials finish on any thread. When stderr is not a
// terminal (a log file, CI), it prints a line at every tenth of the trials instead of redrawing.
class ProgressBar {
 public:
  ProgressBar(int total, const TuneMetric& metric, bool enabled)
      : total_(total), metric_(metric), enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0) {
    Draw();
  }

  void TrialDone(const std::optional<double>& value) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    if (value && (!best_ || metric_.Better(*value, *best_))) best_ = value;
    DrawLocked();
  }

  void Finish() {
    if (enabled_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  void Draw() {
    std::lock_guard<std::mutex> lock(mu_);
    DrawLocked();
  }
  void DrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!enabled_) return;
    if (!tty_) {
      // The first line, then one per tenth done (and the last).
      if (done_ > 0 && done_ != total_ && done_ * 10 / total_ == (done_ - 1) * 10 / total_) return;
    }
    constexpr int kWidth = 24;
    const int filled = total_ == 0 ? kWidth : done_ * kWidth / total_;
    std::string bar(filled, '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "%stune [%s] %d/%d", tty_ ? "\r" : "", bar.c_str(), done_, total_);
    if (best_) std::fprintf(stderr, "  best %s %.5f", metric_.key.c_str(), *best_);
    if (!tty_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

  const int total_;
  const TuneMetric metric_;
  const bool enabled_;
  const bool tty_;
  std::mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<double> best_ ABSL_GUARDED_BY(mu_);
};

std::string FormatMetric(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.5f", v);
  return buf;
}

// The ranked trials on stdout: rank, trial, each parameter, the metric, seconds; failed trials
// last.
void PrintTrialTable(const SearchSpace& space, const std::vector<TrialConfig>& configs,
                     const std::vector<TrialResult>& results, const std::vector<int>& ranked,
                     const TuneMetric& metric) {
  std::vector<int> widths;
  std::printf("%4s %5s", "rank", "trial");
  for (const ParamSpace& p : space.params) {
    widths.push_back(std::max<int>(p.name.size(), 8));
    std::printf("  %*s", widths.back(), p.name.c_str());
  }
  const int metric_width = std::max<int>(metric.key.size(), 9);
  std::printf("  %*s %8s\n", metric_width, metric.key.c_str(), "seconds");
  int rank = 0;
  for (int t : ranked) {
    const TrialResult& r = results[t];
    if (r.value) {
      std::printf("%4d %5d", ++rank, t);
    } else {
      std::printf("%4s %5d", "-", t);
    }
    for (size_t i = 0; i < space.params.size(); ++i) {
      std::printf("  %*s", widths[i],
                  FormatParamValue(space.params[i].name, configs[t][i]).c_str());
    }
    if (r.value) {
      std::printf("  %*.5f", metric_width, *r.value);
    } else {
      std::printf("  %*s", metric_width, "failed");
    }
    std::printf(" %8.2f%s\n", r.seconds, t == 0 ? "  defaults" : "");
  }
}

// What the flags of a search resolve to.
struct TuneSetup {
  std::string algorithm_name;
  FeedbackKind feedback = FeedbackKind::kExplicit;
  TuneMetric metric;
  SearchKind kind = SearchKind::kRandom;
  SplitSpec split;
  TrainOptions base;  // every trial's options before its configuration
  SearchSpace space;
};

// Parses and checks the flags before any data is read. Returns InvalidArgument naming the flag.
absl::StatusOr<TuneSetup> SetupOf(const TuneCommand& cmd, Logger* log) {
  TuneSetup s;
  ASSIGN_OR_RETURN(s.feedback, ResolveFeedbackKind(cmd.feedback, cmd.data, cmd.input, log));
  // Ratings without --algorithm tune bpmf, the rating predictor (the ranking-on-ratings model of
  // `train` has no tuning of its own yet); ranked by NDCG@10 like everything else.
  s.algorithm_name = !cmd.algorithm.empty()                  ? cmd.algorithm
                     : s.feedback == FeedbackKind::kExplicit ? "bpmf"
                                                         : "als";
  ModelSettings settings;
  ASSIGN_OR_RETURN(settings.algorithm, ParseAlgorithm(s.algorithm_name));
  // Rating metrics need a model that predicts ratings: explicit feedback, and not popularity.
  const bool predicts_ratings =
      s.feedback == FeedbackKind::kExplicit && settings.algorithm != Algorithm::kPopular;
  // Ranking first: trials are ranked by the list they serve unless asked otherwise.
  const std::string metric_name = !cmd.metric.empty() ? cmd.metric : "ndcg@10";
  ASSIGN_OR_RETURN(s.metric, ParseTuneMetric(metric_name, s.feedback));
  if (!predicts_ratings && (s.metric.key == "rmse" || s.metric.key == "mae")) {
    return absl::InvalidArgumentError(absl::StrCat(
        s.algorithm_name, " predicts no ratings: rank the trials by e.g. --metric ndcg@10"));
  }
  ASSIGN_OR_RETURN(s.kind, ParseSearchKind(cmd.search));
  if (cmd.trials < 1) return absl::InvalidArgumentError("--trials must be >= 1");
  if (cmd.out.empty()) return absl::InvalidArgumentError("--out must name a file");
  ASSIGN_OR_RETURN(s.split, ParseSplitSpec(cmd.split));
  settings.feedback = s.feedback;
  settings.als.seed = cmd.seed;
  settings.bpmf.seed = cmd.seed;
  s.base = MakeTrainOptions(settings);
  const std::string space_source = cmd.space.empty() ? "default search space" : cmd.space;
  ASSIGN_OR_RETURN(s.space, cmd.space.empty() ? DefaultSearchSpace(settings.algorithm, s.feedback)
                                              : ReadSearchSpace(cmd.space));
  RETURN_IF_ERROR(CheckSearchSpace(s.space, s.base, space_source));
  return s;
}

// The best configuration as a `recloop train --config` file.
absl::Status WriteBest(const TuneCommand& cmd, const TuneSetup& s, const TrialConfig& best_config,
                       int best, int n, double best_value) {
  const std::string comment =
      absl::StrCat("Written by recloop tune: trial ", best, " of ", n, ", validation ",
                   s.metric.key, " ", FormatMetric(best_value), " (split ", cmd.split, " of ",
                   cmd.data, ", seed ", cmd.seed, ").\nUse: recloop train --config ", cmd.out,
                   " --data FILE ...; flags on the command line win.");
  std::ofstream out(cmd.out, std::ios::binary | std::ios::trunc);
  out << TrainConfigToml(s.space, best_config, s.base, s.metric, comment);
  if (!out.flush()) return absl::InternalError("cannot write " + cmd.out);
  return absl::OkStatus();
}

// Reported, never chosen on: the best configuration and the defaults retrained on all of --data,
// as `recloop train --config` would train them, and scored on the test file.
int ReportTest(const TuneCommand& cmd, const TuneSetup& s, const Interactions& data,
               const Interactions& test, const std::vector<TrialConfig>& configs, int best) {
  if (!cmd.quiet) {
    std::fprintf(stderr, "retraining the best configuration and the defaults on all of %s\n",
                 cmd.data.c_str());
  }
  absl::StatusOr<double> best_test = absl::UnknownError("not run");
  absl::StatusOr<double> defaults_test = absl::UnknownError("not run");
  auto score = [&](const TrialConfig& config) {
    return TrialMetric(data, test, ApplyConfig(s.space, config, s.base), s.metric);
  };
  if (best == 0) {
    best_test = defaults_test = score(configs[0]);
  } else {
    tbb::parallel_invoke([&] { best_test = score(configs[best]); },
                         [&] { defaults_test = score(configs[0]); });
  }
  if (!best_test.ok()) return Fail(best_test.status());
  if (!defaults_test.ok()) return Fail(defaults_test.status());
  std::printf("%s on %s (trained on all of %s):\n", s.metric.key.c_str(), cmd.test.c_str(),
              cmd.data.c_str());
  std::printf("  %-20s %.5f\n", "defaults (trial 0)", *defaults_test);
  std::printf("  %-20s %.5f\n", absl::StrCat("best (trial ", best, ")").c_str(), *best_test);
  return 0;
}

// The search's opening line on stderr.
void PrintSearchLine(const TuneCommand& cmd, const TuneSetup& s, const SplitResult& split, int n) {
  std::fprintf(stderr,
               "tune: %d trials of %s %s (%s search), split %s: %lld train, %lld validation; "
               "%s (%s is better)\n",
               n, std::string(ToString(s.feedback)).c_str(), s.algorithm_name.c_str(),
               cmd.search.c_str(), cmd.split.c_str(), static_cast<long long>(split.train.size()),
               static_cast<long long>(split.test.size()), s.metric.key.c_str(),
               s.metric.lower_is_better ? "lower" : "higher");
  if (n < cmd.trials) {
    std::fprintf(stderr, "  the search space has only %d distinct configurations\n", n);
  }
}

int RunTune(const TuneCommand& cmd) {
  CliLogger log(cmd.quiet);
  const absl::StatusOr<TuneSetup> setup = SetupOf(cmd, &log);
  if (!setup.ok()) return Fail(setup.status());
  const TuneSetup& s = *setup;
  auto read_options = MakeReadOptions(cmd.input, s.feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  auto data = ReadDataFile(cmd.data, *read_options, &log);
  if (!data.ok()) return Fail(data.status());
  // The test file is read before the search so that a bad path fails in a second, not after it.
  std::optional<Interactions> test;
  if (!cmd.test.empty()) {
    auto t = ReadDataFile(cmd.test, *read_options, &log);
    if (!t.ok()) return Fail(t.status());
    test = std::move(*t);
  }
  // Validation comes out of the training data only: the test file never chooses anything.
  auto split = Split(*data, s.split, cmd.seed);
  if (!split.ok()) return Fail(split.status());

  const std::vector<TrialConfig> configs =
      SampleTrials(s.space, s.kind, cmd.trials, cmd.seed, ConfigOf(s.space, s.base));
  const int n = static_cast<int>(configs.size());
  if (!cmd.quiet) PrintSearchLine(cmd, s, *split, n);
  const Timer timer;
  ProgressBar progress(n, s.metric, !cmd.quiet);
  const std::vector<TrialResult> results =
      RunTrials(split->train, split->test, s.space, configs, s.base, s.metric,
                [&](const TrialResult& r) { progress.TrialDone(r.value); });
  progress.Finish();
  const double search_seconds = timer.Seconds();

  const std::vector<int> ranked = RankTrials(results, s.metric);
  for (int t = 0; t < n; ++t) {
    if (!results[t].value) {
      std::fprintf(stderr, "trial %d (%s) failed: %s\n", t,
                   DescribeConfig(s.space, configs[t]).c_str(), results[t].error.c_str());
    }
  }
  const int best = ranked[0];
  if (!results[best].value) {
    return Fail(absl::InternalError("every trial failed; trial 0: " + results[0].error));
  }
  PrintTrialTable(s.space, configs, results, ranked, s.metric);
  std::printf("best: trial %d (%s): validation %s %.5f", best,
              DescribeConfig(s.space, configs[best]).c_str(), s.metric.key.c_str(),
              *results[best].value);
  if (results[0].value) std::printf(" (defaults %.5f)", *results[0].value);
  std::printf("; %d trials in %.1f s\n", n, search_seconds);
  if (absl::Status w = WriteBest(cmd, s, configs[best], best, n, *results[best].value); !w.ok()) {
    return Fail(w);
  }
  std::printf("wrote %s (recloop train --config %s --data ...)\n", cmd.out.c_str(),
              cmd.out.c_str());
  std::fflush(stdout);
  if (!test) return 0;
  return ReportTest(cmd, s, *data, *test, configs, best);
}

}  // namespace

Subcommand AddTuneCommand(CLI::App* app) {
  auto cmd = std::make_shared<TuneCommand>();
  CLI::App* sub = app->add_subcommand(
      "tune",
      "Search hyper-parameters on a validation split of --data; write the best as a "
      "`train --config` file");
  sub->fallthrough();  // --threads after `tune` too
  sub->add_option("--data", cmd->data, "Training file; validation is split off it")->required();
  sub->add_option("--split", cmd->split,
                  "How validation is split off --data: random:F, user:F, user-last:N or "
                  "time:F")
      ->capture_default_str();
  sub->add_option("--test", cmd->test,
                  "After the search, retrain the best configuration and the defaults on all "
                  "of --data and report both on this file (never used to choose)");
  AddInputFlags(sub, &cmd->input);
  sub->add_option("--algorithm", cmd->algorithm,
                  "als, bpmf or popular (default: as train, bpmf for explicit feedback, als "
                  "for implicit)");
  sub->add_option("--feedback", cmd->feedback, "explicit (ratings), implicit or auto (as train)")
      ->capture_default_str();
  sub->add_option("--metric", cmd->metric,
                  "Ranks the trials: rmse, mae (lower is better), auc, or ndcg@K, recall@K, "
                  "map@K, precision@K, hit_rate@K (default: ndcg@10, the served ranking)");
  sub->add_option("--trials", cmd->trials, "Trials, the first being the defaults")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--search", cmd->search, "random or grid")->capture_default_str();
  sub->add_option("--space", cmd->space,
                  "JSON search space, e.g. {\"factors\": {\"values\": [32, 64]}, "
                  "\"regularization\": {\"min\": 0.02, \"max\": 0.5, \"log\": true}} "
                  "(default: per algorithm)");
  sub->add_option("--seed", cmd->seed, "Seed of the split, the sampling and the trials")
      ->capture_default_str();
  sub->add_option("--out", cmd->out, "The best configuration, a TOML [train] table")
      ->capture_default_str();
  sub->add_flag("--quiet", cmd->quiet, "No progress bar on stderr");

  return {sub, [cmd] { return RunTune(*cmd); }};
}

}  // namespace recloop
