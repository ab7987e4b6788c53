// Hyper-parameter search, the library under `recloop tune`: search spaces (parsed from JSON or
// the per-algorithm defaults), trial sampling (random or grid, seeded), metric selection, running
// and ranking trials, and the `recloop train --config` file the best trial is written as.
// All functions are thread-safe (pure, or parallel inside with no shared state).
#ifndef RECLOOP_TRAINING_TUNE_H_
#define RECLOOP_TRAINING_TUNE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/factor_model.h"
#include "nlohmann/json_fwd.hpp"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {

// One tuned parameter. Its name is a `recloop train` long flag without the dashes
// (TunableParameterNames()).
struct ParamSpace {
  std::string name;
  std::vector<double> values;  // choose among these, or (when empty) from the range below
  double min = 0.0;
  double max = 0.0;
  bool log = false;      // sample the range log-uniformly (min > 0)
  bool integer = false;  // integers only (always set for integer parameters)
};

// The parameters being tuned, in the canonical order of TunableParameterNames() whatever the
// order in the file (so tables and config files list them the same way every time).
struct SearchSpace {
  std::vector<ParamSpace> params;
};

// A configuration: one value per parameter of its SearchSpace, in the same order.
using TrialConfig = std::vector<double>;

// Every parameter a search space may name, in canonical order.
std::vector<std::string> TunableParameterNames();

// Parses a search space: an object whose keys are parameter names and whose values are
// {"values": [..]} or {"min": a, "max": b, "log": bool, "int": bool} (a bare [..] is short for
// {"values": [..]}). Returns InvalidArgument starting with `source` (the file name) and naming
// the parameter for unknown parameters, unknown fields, empty lists, non-numbers, min > max,
// log ranges with min <= 0 and fractional values of integer parameters.
absl::StatusOr<SearchSpace> ParseSearchSpace(const nlohmann::json& json, const std::string& source);

// Reads and parses a search space file (NotFound / InvalidArgument naming the file).
absl::StatusOr<SearchSpace> ReadSearchSpace(const std::string& path);

// The built-in space of an algorithm: explicit ALS tunes factors, regularization,
// bias-regularization and iterations; implicit ALS factors, regularization, alpha and
// iterations. Returns InvalidArgument for algorithms without one (popular: nothing to tune).
absl::StatusOr<SearchSpace> DefaultSearchSpace(Algorithm algorithm, FeedbackKind feedback);

// Checks that every parameter of `space` is used by the model `base` trains (alpha is not, for
// explicit ALS) and that every value the space can produce passes the trainer's validation.
// Returns InvalidArgument starting with `source` and naming the parameter.
absl::Status CheckSearchSpace(const SearchSpace& space, const TrainOptions& base,
                              const std::string& source);

// The values of the space's parameters in `options`, with defaults resolved (explicit ALS's
// regularization -1 reads as 0.12): trial 0 of every search.
TrialConfig ConfigOf(const SearchSpace& space, const TrainOptions& options);

// `base` with the configuration's values set.
TrainOptions ApplyConfig(const SearchSpace& space, const TrialConfig& config,
                         const TrainOptions& base);

enum class SearchKind { kRandom, kGrid };
absl::StatusOr<SearchKind> ParseSearchKind(const std::string& s);

// Ranges are cut into this many points (log-spaced for log ranges) for a grid search.
inline constexpr int kGridPointsPerRange = 4;

// The trials of a search, at most `trials` (>= 1) of them. Trial 0 is `defaults`, so a search
// never reports something worse on validation than the defaults. The others are
//  random: drawn independently from `seed` (values uniformly, ranges uniformly or
//          log-uniformly, continuous values rounded to 3 significant digits), avoiding repeats
//          where the space allows;
//  grid:   the cartesian product of each parameter's values (ranges discretised into
//          kGridPointsPerRange points), first parameter slowest, without `defaults`; shuffled
//          with `seed` and cut when there are more than trials - 1 (so a grid can give fewer).
// Deterministic for (space, kind, trials, seed, defaults) on every platform.
std::vector<TrialConfig> SampleTrials(const SearchSpace& space, SearchKind kind, int trials,
                                      uint64_t seed, const TrialConfig& defaults);

// The metric trials are ranked by: "rmse", "mae", "auc", or a ranking metric with its cut-off
// such as "ndcg@10", "recall@20", "map@10" (any key EvalResult::ToJson() prints with "@K").
struct TuneMetric {
  std::string key;               // as in EvalResult::ToJson()
  int k = 10;                    // EvalOptions::k to evaluate with
  bool lower_is_better = false;  // rmse and mae
  bool Better(double a, double b) const { return lower_is_better ? a < b : a > b; }
};

// Returns InvalidArgument for unknown metrics, K < 1 and rmse/mae with implicit feedback.
absl::StatusOr<TuneMetric> ParseTuneMetric(const std::string& s, FeedbackKind feedback);

// The metric's value in `result` (InvalidArgument if the result has no such value).
absl::StatusOr<double> MetricValue(const EvalResult& result, const TuneMetric& metric);

// A parameter value as the table and the config file print it: integers plainly, others with
// the fewest digits that read back as the same number (in the parameter's own precision: float
// for ALS's float fields), so `recloop train --config` trains exactly the tuned model.
std::string FormatParamValue(const std::string& name, double value);

// A TOML file for `recloop train --config FILE`: a [train] table with algorithm, feedback,
// seed, k (for ranking metrics) and the configuration's parameters, keyed by their long flag
// names without dashes (bias-regularization = 0.05). `comment` (may hold newlines) is written
// first as # lines.
std::string TrainConfigToml(const SearchSpace& space, const TrialConfig& config,
                            const TrainOptions& base, const TuneMetric& metric,
                            const std::string& comment);

// One trial's outcome.
struct TrialResult {
  std::optional<double> value;  // the validation metric; empty if the trial failed
  std::string error;            // why it failed
  double seconds = 0.0;         // training and evaluation, wall time
};

// Trains `options` on `train` and returns the metric on `validation`. Returns the trainer's or
// the evaluation's error, or Internal if the metric is not finite.
absl::StatusOr<double> TrialMetric(const Interactions& train, const Interactions& validation,
                                   const TrainOptions& options, const TuneMetric& metric);

// Runs every configuration (applied to `base`) as a trial, in parallel within the oneTBB thread
// budget; result t belongs to configs[t]. `on_trial_done` (may be empty) is called once per trial
// as it finishes, from any thread and possibly concurrently.
std::vector<TrialResult> RunTrials(const Interactions& train, const Interactions& validation,
                                   const SearchSpace& space,
                                   const std::vector<TrialConfig>& configs,
                                   const TrainOptions& base, const TuneMetric& metric,
                                   const std::function<void(const TrialResult&)>& on_trial_done);

// Trial numbers best first, failed trials last; ties go to the lower trial number, so the
// defaults (trial 0) win a tie.
std::vector<int> RankTrials(const std::vector<TrialResult>& results, const TuneMetric& metric);

// "name=value name=value", the configuration as tables and messages print it.
std::string DescribeConfig(const SearchSpace& space, const TrialConfig& config);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_TUNE_H_
