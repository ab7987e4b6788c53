#include "training/tune.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/hash_mix.h"
#include "base/timer.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;

// The models a parameter changes, as bits, so that a search space which tunes a parameter the
// model ignores (alpha for explicit ALS) is refused instead of wasting trials on it.
enum ModelBits : uint32_t {
  kExplicitAls = 1u << 0,
  kImplicitAls = 1u << 1,
  kAnyAls = kExplicitAls | kImplicitAls,
  kPopularModel = 1u << 2,
  kBpmfModel = 1u << 3,
};

uint32_t ModelBitOf(const TrainOptions& o) {
  if (o.algorithm == Algorithm::kAls) {
    return o.feedback == FeedbackKind::kExplicit ? kExplicitAls : kImplicitAls;
  }
  if (o.algorithm == Algorithm::kPopular) return kPopularModel;
  if (o.algorithm == Algorithm::kBpmf) return kBpmfModel;
  return 0;  // a model nothing in kParams applies to (yet)
}

enum class ValueType { kInt, kFloat, kDouble };  // the type of the TrainOptions field

// A tunable parameter: its `recloop train` flag name and how it reads and writes TrainOptions.
struct TunableParam {
  const char* name;
  ValueType type;
  uint32_t models;  // ModelBits it applies to
  void (*set)(TrainOptions* o, double v);
  double (*get)(const TrainOptions& o);
};

float ResolvedRegularization(const TrainOptions& o) {
  if (o.als.regularization >= 0) return o.als.regularization;
  return o.feedback == FeedbackKind::kExplicit ? kDefaultExplicitRegularization
                                           : kDefaultImplicitRegularization;
}

// Every tunable parameter, one line each, in the order tables and config files list them.
// Adding one: its name (the train flag without dashes, which is also its config-file key), its
// field type, the models it applies to, a setter and a getter (the getter resolves defaults).
// clang-format off
const TunableParam kParams[] = {
    {"factors", ValueType::kInt, kAnyAls | kBpmfModel,
     [](TrainOptions* o, double v) { o->als.factors = o->bpmf.factors = static_cast<int>(v); },
     [](const TrainOptions& o) -> double {
       return o.algorithm == Algorithm::kBpmf ? o.bpmf.factors : o.als.factors; }},
    {"iterations", ValueType::kInt, kAnyAls,
     [](TrainOptions* o, double v) { o->als.iterations = static_cast<int>(v); },
     [](const TrainOptions& o) -> double { return o.als.iterations; }},
    {"regularization", ValueType::kFloat, kAnyAls,
     [](TrainOptions* o, double v) { o->als.regularization = static_cast<float>(v); },
     [](const TrainOptions& o) -> double { return ResolvedRegularization(o); }},
    {"bias-regularization", ValueType::kFloat, kExplicitAls,
     [](TrainOptions* o, double v) { o->als.bias_regularization = static_cast<float>(v); },
     [](const TrainOptions& o) -> double { return o.als.bias_regularization; }},
    {"alpha", ValueType::kFloat, kImplicitAls,
     [](TrainOptions* o, double v) { o->als.alpha = static_cast<float>(v); },
     [](const TrainOptions& o) -> double { return o.als.alpha; }},
    {"cg-steps", ValueType::kInt, kImplicitAls,
     [](TrainOptions* o, double v) { o->als.cg_steps = static_cast<int>(v); },
     [](const TrainOptions& o) -> double { return o.als.cg_steps; }},
    {"popularity-half-life", ValueType::kDouble, kPopularModel,
     [](TrainOptions* o, double v) { o->popularity.half_life_days = v; },
     [](const TrainOptions& o) -> double { return o.popularity.half_life_days; }},
    {"burn-in", ValueType::kInt, kBpmfModel,
     [](TrainOptions* o, double v) { o->bpmf.burn_in = static_cast<int>(v); },
     [](const TrainOptions& o) -> double { return o.bpmf.burn_in; }},
    {"samples", ValueType::kInt, kBpmfModel,
     [](TrainOptions* o, double v) { o->bpmf.samples = static_cast<int>(v); },
     [](const TrainOptions& o) -> double { return o.bpmf.samples; }},
    {"served-samples", ValueType::kInt, kBpmfModel,
     [](TrainOptions* o, double v) { o->bpmf.served_samples = static_cast<int>(v); },
     [](const TrainOptions& o) -> double { return o.bpmf.served_samples; }},
    {"user-noise-dof", ValueType::kFloat, kBpmfModel,
     [](TrainOptions* o, double v) { o->bpmf.user_noise_dof = static_cast<float>(v); },
     [](const TrainOptions& o) -> double { return o.bpmf.user_noise_dof; }},
    {"item-noise-dof", ValueType::kFloat, kBpmfModel,
     [](TrainOptions* o, double v) { o->bpmf.item_noise_dof = static_cast<float>(v); },
     [](const TrainOptions& o) -> double { return o.bpmf.item_noise_dof; }},
};
// clang-format on

const TunableParam* FindParam(const std::string& name) {
  for (const TunableParam& p : kParams) {
    if (name == p.name) return &p;
  }
  return nullptr;
}

int ParamIndex(const TunableParam* p) { return static_cast<int>(p - kParams); }

// The trainer's own validation of every option a trial may set.
absl::Status ValidateTrainOptions(const TrainOptions& o) {
  RETURN_IF_ERROR(ValidatePopularityOptions(o.popularity));
  AlsOptions als = o.als;
  als.feedback = o.feedback;  // as TrainModel trains it
  if (o.algorithm == Algorithm::kAls) RETURN_IF_ERROR(ValidateAlsOptions(als));
  if (o.algorithm == Algorithm::kBpmf) RETURN_IF_ERROR(ValidateBpmfOptions(o.bpmf));
  return absl::OkStatus();
}

bool IsInteger(double v) { return std::isfinite(v) && v == std::floor(v) && std::abs(v) < 1e15; }

// `v` rounded to 3 significant digits, so that sampled values read well in tables and config
// files (a finer grain is below what a validation metric can resolve).
double RoundSignificant(double v) {
  if (v == 0 || !std::isfinite(v)) return v;
  const int exponent = static_cast<int>(std::floor(std::log10(std::abs(v)))) - 2;
  // Scale by an exact power of ten on the side where it is an integer, so that e.g. 0.0523
  // comes out as the double nearest 0.0523.
  if (exponent < 0) {
    const double scale = std::pow(10.0, -exponent);
    return std::round(v * scale) / scale;
  }
  const double scale = std::pow(10.0, exponent);
  return std::round(v / scale) * scale;
}

// A uniform draw from [0, n), n < 2^53 (the bias of the float product is below 2^-53 per
// value). The generator is base/hash_mix.h's SplitMix64, whose output is the same on every
// platform (the distributions of <random> are not specified exactly, and a search must replay
// from its seed).
uint64_t Below(SplitMix64* rng, uint64_t n) {
  return std::min<uint64_t>(static_cast<uint64_t>(rng->Uniform() * static_cast<double>(n)), n - 1);
}

double SampleParam(const ParamSpace& p, SplitMix64* rng) {
  if (!p.values.empty()) return p.values[Below(rng, p.values.size())];
  if (p.integer) {
    const double lo = std::ceil(p.min), hi = std::floor(p.max);
    if (p.log) {
      // Log-uniform over [lo - 0.5, hi + 0.5), so that the end points get their full share.
      const double a = std::log(lo - 0.5), b = std::log(hi + 0.5);
      return std::clamp(std::round(std::exp(a + rng->Uniform() * (b - a))), lo, hi);
    }
    return lo + static_cast<double>(Below(rng, static_cast<uint64_t>(hi - lo) + 1));
  }
  const double u = rng->Uniform();
  const double v = p.log ? std::exp(std::log(p.min) + u * (std::log(p.max) - std::log(p.min)))
                         : p.min + u * (p.max - p.min);
  return std::clamp(RoundSignificant(v), p.min, p.max);
}

// The points a grid search tries for one parameter, without repeats, in increasing order for
// ranges and in the file's order for value lists.
std::vector<double> GridPoints(const ParamSpace& p) {
  std::vector<double> points;
  auto add = [&](double v) {
    if (std::find(points.begin(), points.end(), v) == points.end()) points.push_back(v);
  };
  if (!p.values.empty()) {
    for (double v : p.values) add(v);
    return points;
  }
  for (int i = 0; i < kGridPointsPerRange; ++i) {
    const double t = static_cast<double>(i) / (kGridPointsPerRange - 1);
    double v = p.log ? std::exp(std::log(p.min) + t * (std::log(p.max) - std::log(p.min)))
                     : p.min + t * (p.max - p.min);
    v = p.integer ? std::round(v) : RoundSignificant(v);
    if (i == 0) v = p.integer ? std::ceil(p.min) : p.min;  // the ends exactly as written
    if (i == kGridPointsPerRange - 1) v = p.integer ? std::floor(p.max) : p.max;
    add(std::clamp(v, p.min, p.max));
  }
  return points;
}

absl::Status SpaceError(const std::string& source, const std::string& param,
                        const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": parameter '", param, "': ", what));
}

absl::StatusOr<double> Number(const nlohmann::json& j, const std::string& source,
                              const std::string& param, const std::string& field) {
  if (!j.is_number()) {
    return SpaceError(source, param, absl::StrCat(field, " must be a number, got ", j.dump()));
  }
  const double v = j.get<double>();
  if (!std::isfinite(v)) return SpaceError(source, param, absl::StrCat(field, " must be finite"));
  return v;
}

absl::StatusOr<ParamSpace> ParseParam(const TunableParam& def, const nlohmann::json& j,
                                      const std::string& source) {
  ParamSpace p;
  p.name = def.name;
  p.integer = def.type == ValueType::kInt;
  const nlohmann::json* values = nullptr;
  if (j.is_array()) {
    values = &j;
  } else if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == "values") {
        values = &value;
      } else if (key == "min") {
        ASSIGN_OR_RETURN(p.min, Number(value, source, def.name, "min"));
      } else if (key == "max") {
        ASSIGN_OR_RETURN(p.max, Number(value, source, def.name, "max"));
      } else if (key == "log" || key == "int") {
        if (!value.is_boolean()) {
          return SpaceError(source, def.name, absl::StrCat(key, " must be true or false"));
        }
        (key == "log" ? p.log : p.integer) |= value.get<bool>();
      } else {
        return SpaceError(source, def.name,
                          absl::StrCat("unknown field '", key,
                                       "' (expected \"values\", or \"min\", \"max\" and "
                                       "optionally \"log\", \"int\")"));
      }
    }
  } else {
    return SpaceError(source, def.name,
                      "expected {\"values\": [...]} or {\"min\": a, \"max\": b}, got " + j.dump());
  }
  const bool has_range = j.is_object() && (j.contains("min") || j.contains("max"));
  if (values != nullptr) {
    if (has_range || (j.is_object() && j.contains("log"))) {
      return SpaceError(source, def.name, "give either \"values\" or a \"min\"/\"max\" range");
    }
    if (!values->is_array() || values->empty()) {
      return SpaceError(source, def.name, "\"values\" must be a non-empty list of numbers");
    }
    for (const nlohmann::json& v : *values) {
      ASSIGN_OR_RETURN(const double x, Number(v, source, def.name, "every value"));
      if (p.integer && !IsInteger(x)) {
        return SpaceError(source, def.name, absl::StrCat("value ", v.dump(), " is not an integer"));
      }
      p.values.push_back(x);
    }
    return p;
  }
  if (!j.contains("min") || !j.contains("max")) {
    return SpaceError(source, def.name, "a range needs both \"min\" and \"max\"");
  }
  if (p.min > p.max) {
    return SpaceError(source, def.name,
                      absl::StrCat("min ", p.min, " is greater than max ", p.max));
  }
  if (p.log && p.min <= 0) {
    return SpaceError(source, def.name, absl::StrCat("a log range needs min > 0, got ", p.min));
  }
  if (p.integer && std::ceil(p.min) > std::floor(p.max)) {
    return SpaceError(source, def.name,
                      absl::StrCat("no integer between min ", p.min, " and max ", p.max));
  }
  return p;
}

std::string ShortestDouble(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string ShortestFloat(float v) {
  char buf[64];
  for (int precision = 1; precision <= 9; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, static_cast<double>(v));
    if (std::strtof(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace

std::vector<std::string> TunableParameterNames() {
  std::vector<std::string> names;
  for (const TunableParam& p : kParams) names.emplace_back(p.name);
  return names;
}

absl::StatusOr<SearchSpace> ParseSearchSpace(const nlohmann::json& json,
                                             const std::string& source) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": a search space is a JSON object of parameters, e.g. "
                     "{\"factors\": {\"values\": [32, 64]}}"));
  }
  if (json.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no parameters to tune"));
  }
  std::vector<std::pair<int, ParamSpace>> parsed;
  for (const auto& [name, value] : json.items()) {
    const TunableParam* def = FindParam(name);
    if (def == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": unknown parameter '", name,
                       "'; tunable: ", absl::StrJoin(TunableParameterNames(), ", ")));
    }
    ASSIGN_OR_RETURN(ParamSpace p, ParseParam(*def, value, source));
    parsed.emplace_back(ParamIndex(def), std::move(p));
  }
  std::sort(parsed.begin(), parsed.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  SearchSpace space;
  for (auto& [index, p] : parsed) space.params.push_back(std::move(p));
  return space;
}

absl::StatusOr<SearchSpace> ReadSearchSpace(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read search space file " + path);
  std::stringstream text;
  text << in.rdbuf();
  // Parsed without exceptions: a malformed file is an ordinary error here.
  const nlohmann::json json =
      nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return absl::InvalidArgumentError(path + ": not valid JSON");
  return ParseSearchSpace(json, path);
}

absl::StatusOr<SearchSpace> DefaultSearchSpace(Algorithm algorithm, FeedbackKind feedback) {
  // Around the defaults (training/als.h), wide enough to move off them in either direction:
  // a default that is already best then wins as trial 0.
  static constexpr char kExplicitAlsSpace[] = R"({
      "factors": {"values": [16, 32, 64, 128]},
      "regularization": {"min": 0.02, "max": 0.5, "log": true},
      "bias-regularization": {"min": 0.01, "max": 1, "log": true},
      "iterations": {"min": 10, "max": 30, "int": true}})";
  static constexpr char kImplicitAlsSpace[] = R"({
      "factors": {"values": [32, 64, 128]},
      "regularization": {"min": 1, "max": 200, "log": true},
      "alpha": {"min": 0.1, "max": 20, "log": true},
      "iterations": {"min": 5, "max": 20, "int": true}})";
  if (algorithm == Algorithm::kAls) {
    return ParseSearchSpace(
        nlohmann::json::parse(feedback == FeedbackKind::kExplicit ? kExplicitAlsSpace
                                                              : kImplicitAlsSpace),
        "default search space");
  }
  // BPMF's hyper-priors set its regularisation; what is left is the size of a sample and how
  // heavy-tailed the noise is. (More samples are always better: not a search dimension.)
  static constexpr char kBpmfSpace[] = R"({
      "factors": {"values": [5, 8, 10, 16, 20]},
      "user-noise-dof": {"min": 2, "max": 50, "log": true},
      "item-noise-dof": {"min": 2, "max": 50, "log": true}})";
  if (algorithm == Algorithm::kBpmf) {
    return ParseSearchSpace(nlohmann::json::parse(kBpmfSpace), "default search space");
  }
  if (algorithm == Algorithm::kPopular) {
    return absl::InvalidArgumentError(
        "popular has no hyper-parameters to tune by default; give --space FILE with "
        "popularity-half-life to tune its time decay (needs timestamps)");
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "no default search space for ", std::string(ToString(algorithm)), ": give --space FILE"));
}

absl::Status CheckSearchSpace(const SearchSpace& space, const TrainOptions& base,
                              const std::string& source) {
  const uint32_t model = ModelBitOf(base);
  std::string model_name(ToString(base.algorithm));
  if (base.algorithm == Algorithm::kAls) {
    model_name = absl::StrCat(std::string(ToString(base.feedback)), " ", model_name);
  }
  auto candidates_of = [](const ParamSpace& p) {
    if (!p.values.empty()) return p.values;
    return p.integer ? std::vector<double>{std::ceil(p.min), std::floor(p.max)}
                     : std::vector<double>{p.min, p.max};
  };
  // Each value is checked with the space's other parameters at their first value, so that
  // parameters bound to each other (BPMF's samples and served-samples) are checked together.
  TrainOptions anchored = base;
  for (const ParamSpace& p : space.params) {
    const TunableParam* def = FindParam(p.name);
    if (def == nullptr) return SpaceError(source, p.name, "unknown parameter");
    if ((def->models & model) == 0) {
      return SpaceError(source, p.name, absl::StrCat("does not apply to ", model_name));
    }
    def->set(&anchored, candidates_of(p).front());
  }
  for (const ParamSpace& p : space.params) {
    const TunableParam* def = FindParam(p.name);
    for (double v : candidates_of(p)) {
      TrainOptions o = anchored;
      def->set(&o, v);
      if (absl::Status s = ValidateTrainOptions(o); !s.ok()) {
        return SpaceError(source, p.name, absl::StrCat("value ", v, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

TrialConfig ConfigOf(const SearchSpace& space, const TrainOptions& options) {
  TrialConfig config;
  for (const ParamSpace& p : space.params) {
    const TunableParam* def = FindParam(p.name);
    config.push_back(def == nullptr ? 0.0 : def->get(options));
  }
  return config;
}

TrainOptions ApplyConfig(const SearchSpace& space, const TrialConfig& config,
                         const TrainOptions& base) {
  TrainOptions o = base;
  for (size_t i = 0; i < space.params.size() && i < config.size(); ++i) {
    if (const TunableParam* def = FindParam(space.params[i].name)) def->set(&o, config[i]);
  }
  return o;
}

absl::StatusOr<SearchKind> ParseSearchKind(const std::string& s) {
  if (s == "random") return SearchKind::kRandom;
  if (s == "grid") return SearchKind::kGrid;
  return absl::InvalidArgumentError(absl::StrCat("unknown search '", s, "' (random or grid)"));
}

std::vector<TrialConfig> SampleTrials(const SearchSpace& space, SearchKind kind, int trials,
                                      uint64_t seed, const TrialConfig& defaults) {
  std::vector<TrialConfig> out = {defaults};
  if (trials <= 1 || space.params.empty()) return out;
  const size_t wanted = static_cast<size_t>(trials);
  SplitMix64 rng(seed);
  if (kind == SearchKind::kRandom) {
    std::set<TrialConfig> seen = {defaults};
    // A small space (a few value lists) runs out of new configurations: then stop rather than
    // train the same model twice.
    constexpr int kAttempts = 100;
    while (out.size() < wanted) {
      bool added = false;
      for (int attempt = 0; attempt < kAttempts && !added; ++attempt) {
        TrialConfig c;
        for (const ParamSpace& p : space.params) c.push_back(SampleParam(p, &rng));
        added = seen.insert(c).second;
        if (added) out.push_back(std::move(c));
      }
      if (!added) break;
    }
    return out;
  }
  // Grid: configuration number n is n written in the mixed radix of the points per parameter
  // (the first parameter the most significant digit).
  std::vector<std::vector<double>> points;
  constexpr uint64_t kMaxEnumerated = uint64_t{1} << 20;
  uint64_t total = 1;  // saturates just above kMaxEnumerated
  bool defaults_on_grid = true;
  for (size_t i = 0; i < space.params.size(); ++i) {
    points.push_back(GridPoints(space.params[i]));
    total = std::min(total * points.back().size(), kMaxEnumerated + 1);
    defaults_on_grid =
        defaults_on_grid && i < defaults.size() &&
        std::find(points.back().begin(), points.back().end(), defaults[i]) != points.back().end();
  }
  if (total > kMaxEnumerated) {
    // Too many to list: a random sample of the grid's points, without repeats.
    std::set<TrialConfig> seen = {defaults};
    while (out.size() < wanted) {
      TrialConfig c;
      for (const std::vector<double>& p : points) c.push_back(p[Below(&rng, p.size())]);
      if (seen.insert(c).second) out.push_back(std::move(c));
    }
    return out;
  }
  std::vector<uint64_t> order(total);
  for (uint64_t n = 0; n < total; ++n) order[n] = n;
  if (total - (defaults_on_grid ? 1 : 0) > wanted - 1) {
    for (uint64_t i = total - 1; i > 0; --i) std::swap(order[i], order[Below(&rng, i + 1)]);
  }
  for (uint64_t n : order) {
    if (out.size() >= wanted) break;
    TrialConfig c(points.size());
    for (size_t i = points.size(); i-- > 0;) {
      c[i] = points[i][n % points[i].size()];
      n /= points[i].size();
    }
    if (c != defaults) out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<TuneMetric> ParseTuneMetric(const std::string& s, FeedbackKind feedback) {
  TuneMetric m;
  const size_t at = s.find('@');
  const std::string name(s.substr(0, at));
  if (name == "rmse" || name == "mae" || name == "auc") {
    if (at != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", name, " takes no @K"));
    }
    if (name != "auc" && feedback != FeedbackKind::kExplicit) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metric ", name, " needs explicit feedback (ratings); for implicit use e.g. ndcg@10"));
    }
    m.key = name;
    m.lower_is_better = name != "auc";
    return m;
  }
  if (at != std::string::npos) {
    const std::string k(s.substr(at + 1));
    char* end = nullptr;
    const long value = std::strtol(k.c_str(), &end, 10);
    if (k.empty() || *end != '\0' || value < 1 || value > 100000) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", s, ": the cut-off after @ must be an integer >= 1"));
    }
    m.k = static_cast<int>(value);
  }
  // Valid if the evaluation prints it: a new ranking metric in EvalResult needs no change here.
  EvalResult probe;
  probe.k = m.k;
  m.key = absl::StrCat(name, "@", m.k);
  const nlohmann::json keys = probe.ToJson();
  if (!keys.contains(m.key) || !keys[m.key].is_number_float()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown metric '", s,
        "' (rmse, mae, auc, or a ranking metric with cut-off: ndcg@10, recall@10, map@10, "
        "precision@10, hit_rate@10, coverage@10)"));
  }
  return m;
}

absl::StatusOr<double> MetricValue(const EvalResult& result, const TuneMetric& metric) {
  const nlohmann::json j = result.ToJson();
  if (!j.contains(metric.key) || !j[metric.key].is_number()) {
    return absl::InvalidArgumentError("the evaluation gave no " + metric.key);
  }
  return j[metric.key].get<double>();
}

std::string FormatParamValue(const std::string& name, double value) {
  const TunableParam* def = FindParam(name);
  if ((def != nullptr && def->type == ValueType::kInt) || IsInteger(value)) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  if (def != nullptr && def->type == ValueType::kFloat) {
    return ShortestFloat(static_cast<float>(value));
  }
  return ShortestDouble(value);
}

std::string TrainConfigToml(const SearchSpace& space, const TrialConfig& config,
                            const TrainOptions& base, const TuneMetric& metric,
                            const std::string& comment) {
  std::string out;
  std::istringstream lines(comment);
  for (std::string line; std::getline(lines, line);) out += "# " + line + "\n";
  absl::StrAppend(&out, "[train]\nalgorithm = \"", std::string(ToString(base.algorithm)),
                  "\"\nfeedback = \"", std::string(ToString(base.feedback)),
                  "\"\nseed = ", base.als.seed, "\n");
  if (metric.key.find('@') != std::string::npos) {
    // So that `recloop train` reports the metric at the cut-off it was tuned for.
    absl::StrAppend(&out, "k = ", metric.k, "\n");
  }
  for (size_t i = 0; i < space.params.size() && i < config.size(); ++i) {
    absl::StrAppend(&out, space.params[i].name, " = ",
                    FormatParamValue(space.params[i].name, config[i]), "\n");
  }
  return out;
}

absl::StatusOr<double> TrialMetric(const Interactions& train, const Interactions& validation,
                                   const TrainOptions& options, const TuneMetric& metric) {
  ASSIGN_OR_RETURN(FactorModel model, TrainModel(train, options));
  EvalOptions eval;
  eval.k = metric.k;
  ASSIGN_OR_RETURN(EvalResult result, Evaluate(model, validation, eval));
  ASSIGN_OR_RETURN(double value, MetricValue(result, metric));
  if (!std::isfinite(value)) {
    return absl::InternalError(absl::StrCat(metric.key, " is not finite"));
  }
  return value;
}

std::vector<TrialResult> RunTrials(const Interactions& train, const Interactions& validation,
                                   const SearchSpace& space,
                                   const std::vector<TrialConfig>& configs,
                                   const TrainOptions& base, const TuneMetric& metric,
                                   const std::function<void(const TrialResult&)>& on_trial_done) {
  const int n = static_cast<int>(configs.size());
  std::vector<TrialResult> results(n);
  // Trials run side by side and each trial's training is itself parallel: both levels share the
  // oneTBB arena, so the whole search stays within the caller's thread limit. Training is
  // deterministic for a seed, so the results do not depend on the thread count.
  tbb::parallel_for(
      tbb::blocked_range<int>(0, n, 1),
      [&](const tbb::blocked_range<int>& range) {
        for (int t = range.begin(); t != range.end(); ++t) {
          const Timer timer;
          auto value = TrialMetric(train, validation, ApplyConfig(space, configs[t], base), metric);
          TrialResult& r = results[t];
          r.seconds = timer.Seconds();
          if (value.ok()) {
            r.value = *value;
          } else {
            r.error = std::string(value.status().message());
          }
          if (on_trial_done) on_trial_done(r);
        }
      },
      tbb::simple_partitioner());
  return results;
}

std::vector<int> RankTrials(const std::vector<TrialResult>& results, const TuneMetric& metric) {
  const int n = static_cast<int>(results.size());
  std::vector<int> ranked(n);
  for (int t = 0; t < n; ++t) ranked[t] = t;
  std::stable_sort(ranked.begin(), ranked.end(), [&](int a, int b) {
    const auto& va = results[a].value;
    const auto& vb = results[b].value;
    if (va.has_value() != vb.has_value()) return va.has_value();
    return va && metric.Better(*va, *vb);
  });
  return ranked;
}

std::string DescribeConfig(const SearchSpace& space, const TrialConfig& config) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < space.params.size(); ++i) {
    parts.push_back(space.params[i].name + "=" + FormatParamValue(space.params[i].name, config[i]));
  }
  return absl::StrJoin(parts, " ");
}

}  // namespace recloop
