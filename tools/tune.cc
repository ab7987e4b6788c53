#include "tools/tune.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/split.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/parallel_invoke.h"

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
    return o.feedback == Feedback::kExplicit ? kExplicitAls : kImplicitAls;
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
  return o.feedback == Feedback::kExplicit ? kDefaultExplicitRegularization
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

// SplitMix64: a tiny generator whose output is the same on every platform (the distributions
// of <random> are not specified exactly, and a search must replay from its seed).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // [0, n), n < 2^53 (the bias of the float product is below 2^-53 per value).
  uint64_t Below(uint64_t n) {
    return std::min<uint64_t>(static_cast<uint64_t>(Uniform() * static_cast<double>(n)), n - 1);
  }

 private:
  uint64_t state_;
};

double SampleParam(const ParamSpace& p, Rng* rng) {
  if (!p.values.empty()) return p.values[rng->Below(p.values.size())];
  if (p.integer) {
    const double lo = std::ceil(p.min), hi = std::floor(p.max);
    if (p.log) {
      // Log-uniform over [lo - 0.5, hi + 0.5), so that the end points get their full share.
      const double a = std::log(lo - 0.5), b = std::log(hi + 0.5);
      return std::clamp(std::round(std::exp(a + rng->Uniform() * (b - a))), lo, hi);
    }
    return lo + static_cast<double>(rng->Below(static_cast<uint64_t>(hi - lo) + 1));
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

absl::StatusOr<SearchSpace> DefaultSearchSpace(Algorithm algorithm, Feedback feedback) {
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
        nlohmann::json::parse(feedback == Feedback::kExplicit ? kExplicitAlsSpace
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
  Rng rng(seed);
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
      for (const std::vector<double>& p : points) c.push_back(p[rng.Below(p.size())]);
      if (seen.insert(c).second) out.push_back(std::move(c));
    }
    return out;
  }
  std::vector<uint64_t> order(total);
  for (uint64_t n = 0; n < total; ++n) order[n] = n;
  if (total - (defaults_on_grid ? 1 : 0) > wanted - 1) {
    for (uint64_t i = total - 1; i > 0; --i) std::swap(order[i], order[rng.Below(i + 1)]);
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

absl::StatusOr<TuneMetric> ParseTuneMetric(const std::string& s, Feedback feedback) {
  TuneMetric m;
  const size_t at = s.find('@');
  const std::string name(s.substr(0, at));
  if (name == "rmse" || name == "mae" || name == "auc") {
    if (at != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", name, " takes no @K"));
    }
    if (name != "auc" && feedback != Feedback::kExplicit) {
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

namespace {

struct TrialResult {
  std::optional<double> value;  // the validation metric; empty if the trial failed
  std::string error;
  double seconds = 0.0;
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

// Trains `options` on `train` and returns the metric on `validation`.
absl::StatusOr<double> RunTrial(const Interactions& train, const Interactions& validation,
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

std::string FormatMetric(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.5f", v);
  return buf;
}

std::string DescribeConfig(const SearchSpace& space, const TrialConfig& config) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < space.params.size(); ++i) {
    parts.push_back(space.params[i].name + "=" + FormatParamValue(space.params[i].name, config[i]));
  }
  return absl::StrJoin(parts, " ");
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

}  // namespace

int RunTune(const TuneCommand& cmd) {
  auto feedback = ParseFeedback(cmd.feedback);
  if (!feedback.ok()) return Fail(feedback.status());
  const std::string algorithm_name = AlgorithmOrDefault(cmd.algorithm, *feedback);
  auto algorithm = ParseAlgorithm(algorithm_name);
  if (!algorithm.ok()) return Fail(algorithm.status());
  // Rating metrics need a model that predicts ratings: explicit feedback, and not popularity.
  const bool predicts_ratings =
      *feedback == Feedback::kExplicit && *algorithm != Algorithm::kPopular;
  const std::string metric_name = !cmd.metric.empty() ? cmd.metric
                                  : predicts_ratings  ? "rmse"
                                                      : "ndcg@10";
  auto metric = ParseTuneMetric(metric_name, *feedback);
  if (!metric.ok()) return Fail(metric.status());
  if (!predicts_ratings && (metric->key == "rmse" || metric->key == "mae")) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        algorithm_name, " predicts no ratings: rank the trials by e.g. --metric ndcg@10")));
  }
  auto kind = ParseSearchKind(cmd.search);
  if (!kind.ok()) return Fail(kind.status());
  if (cmd.trials < 1) return Fail(absl::InvalidArgumentError("--trials must be >= 1"));
  if (cmd.out.empty()) return Fail(absl::InvalidArgumentError("--out must name a file"));
  auto spec = ParseSplitSpec(cmd.split);
  if (!spec.ok()) return Fail(spec.status());

  TrainOptions base;
  base.algorithm = *algorithm;
  base.feedback = *feedback;
  base.als.seed = cmd.seed;
  base.bpmf.seed = cmd.seed;
  const std::string space_source = cmd.space.empty() ? "default search space" : cmd.space;
  auto space =
      cmd.space.empty() ? DefaultSearchSpace(*algorithm, *feedback) : ReadSearchSpace(cmd.space);
  if (!space.ok()) return Fail(space.status());
  if (absl::Status s = CheckSearchSpace(*space, base, space_source); !s.ok()) return Fail(s);

  auto read_options = MakeReadOptions(cmd.input, *feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  auto data = ReadDataFile(cmd.data, *read_options, cmd.quiet);
  if (!data.ok()) return Fail(data.status());
  // The test file is read before the search so that a bad path fails in a second, not after it.
  std::optional<Interactions> test;
  if (!cmd.test.empty()) {
    auto t = ReadDataFile(cmd.test, *read_options, cmd.quiet);
    if (!t.ok()) return Fail(t.status());
    test = std::move(*t);
  }
  // Validation comes out of the training data only: the test file never chooses anything.
  auto split = Split(*data, *spec, cmd.seed);
  if (!split.ok()) return Fail(split.status());

  const TrialConfig defaults = ConfigOf(*space, base);
  const std::vector<TrialConfig> configs =
      SampleTrials(*space, *kind, cmd.trials, cmd.seed, defaults);
  const int n = static_cast<int>(configs.size());
  if (!cmd.quiet) {
    std::fprintf(stderr,
                 "tune: %d trials of %s %s (%s search), split %s: %lld train, %lld validation; "
                 "%s (%s is better)\n",
                 n, cmd.feedback.c_str(), algorithm_name.c_str(), cmd.search.c_str(),
                 cmd.split.c_str(), static_cast<long long>(split->train.size()),
                 static_cast<long long>(split->test.size()), metric->key.c_str(),
                 metric->lower_is_better ? "lower" : "higher");
    if (n < cmd.trials) {
      std::fprintf(stderr, "  the search space has only %d distinct configurations\n", n);
    }
  }

  // Trials run side by side and each trial's training is itself parallel: both levels share the
  // oneTBB arena, so the whole search stays within --threads. Training is deterministic for a
  // seed, so the results do not depend on the thread count.
  const auto start = Clock::now();
  std::vector<TrialResult> results(n);
  ProgressBar progress(n, *metric, !cmd.quiet);
  tbb::parallel_for(
      tbb::blocked_range<int>(0, n, 1),
      [&](const tbb::blocked_range<int>& range) {
        for (int t = range.begin(); t != range.end(); ++t) {
          const auto trial_start = Clock::now();
          auto value =
              RunTrial(split->train, split->test, ApplyConfig(*space, configs[t], base), *metric);
          TrialResult& r = results[t];
          r.seconds = SecondsSince(trial_start);
          if (value.ok()) {
            r.value = *value;
          } else {
            r.error = std::string(value.status().message());
          }
          progress.TrialDone(r.value);
        }
      },
      tbb::simple_partitioner());
  progress.Finish();
  const double search_seconds = SecondsSince(start);

  // Best first; ties go to the lower trial number, so the defaults win a tie.
  std::vector<int> ranked(n);
  for (int t = 0; t < n; ++t) ranked[t] = t;
  std::stable_sort(ranked.begin(), ranked.end(), [&](int a, int b) {
    const auto& va = results[a].value;
    const auto& vb = results[b].value;
    if (va.has_value() != vb.has_value()) return va.has_value();
    return va && metric->Better(*va, *vb);
  });
  for (int t = 0; t < n; ++t) {
    if (!results[t].value) {
      std::fprintf(stderr, "trial %d (%s) failed: %s\n", t,
                   DescribeConfig(*space, configs[t]).c_str(), results[t].error.c_str());
    }
  }
  const int best = ranked[0];
  if (!results[best].value) {
    return Fail(absl::InternalError("every trial failed; trial 0: " + results[0].error));
  }
  PrintTrialTable(*space, configs, results, ranked, *metric);
  std::printf("best: trial %d (%s): validation %s %.5f", best,
              DescribeConfig(*space, configs[best]).c_str(), metric->key.c_str(),
              *results[best].value);
  if (results[0].value) std::printf(" (defaults %.5f)", *results[0].value);
  std::printf("; %d trials in %.1f s\n", n, search_seconds);

  const std::string comment =
      absl::StrCat("Written by recloop tune: trial ", best, " of ", n, ", validation ", metric->key,
                   " ", FormatMetric(*results[best].value), " (split ", cmd.split, " of ", cmd.data,
                   ", seed ", cmd.seed, ").\nUse: recloop train --config ", cmd.out,
                   " --data FILE ...; flags on the command line win.");
  {
    std::ofstream out(cmd.out, std::ios::binary | std::ios::trunc);
    out << TrainConfigToml(*space, configs[best], base, *metric, comment);
    if (!out.flush()) return Fail(absl::InternalError("cannot write " + cmd.out));
  }
  std::printf("wrote %s (recloop train --config %s --data ...)\n", cmd.out.c_str(),
              cmd.out.c_str());
  std::fflush(stdout);
  if (!test) return 0;

  // Reported, never chosen on: both configurations retrained on all of --data, as `recloop
  // train --config` would train them, and scored on the test file.
  if (!cmd.quiet) {
    std::fprintf(stderr, "retraining the best configuration and the defaults on all of %s\n",
                 cmd.data.c_str());
  }
  absl::StatusOr<double> best_test = absl::UnknownError("not run");
  absl::StatusOr<double> defaults_test = absl::UnknownError("not run");
  auto score = [&](const TrialConfig& config) {
    return RunTrial(*data, *test, ApplyConfig(*space, config, base), *metric);
  };
  if (best == 0) {
    best_test = defaults_test = score(configs[0]);
  } else {
    tbb::parallel_invoke([&] { best_test = score(configs[best]); },
                         [&] { defaults_test = score(configs[0]); });
  }
  if (!best_test.ok()) return Fail(best_test.status());
  if (!defaults_test.ok()) return Fail(defaults_test.status());
  std::printf("%s on %s (trained on all of %s):\n", metric->key.c_str(), cmd.test.c_str(),
              cmd.data.c_str());
  std::printf("  %-20s %.5f\n", "defaults (trial 0)", *defaults_test);
  std::printf("  %-20s %.5f\n", absl::StrCat("best (trial ", best, ")").c_str(), *best_test);
  return 0;
}

}  // namespace recloop
