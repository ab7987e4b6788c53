#include "serving/experiment.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "toml++/toml.h"

namespace recloop {
namespace {

constexpr int kBuckets = 10'000;

// The [promotion] table of `x`'s file.
absl::StatusOr<PromotionRule> ParsePromotion(const toml::table* t, const Experiment& x) {
  auto fail = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("[promotion]: ", what));
  };
  if (t == nullptr) return fail("must be a table");
  for (const auto& [key, value] : *t) {
    if (key != "variant" && key != "metric" && key != "min_impressions" && key != "margin") {
      return fail(absl::StrCat("unknown key '", std::string(key.str()),
                               "' (known: variant, metric, min_impressions, margin)"));
    }
  }
  PromotionRule rule;
  rule.variant = (*t)["variant"].value_or(std::string());
  const auto it =
      std::find_if(x.variants.begin() + 1, x.variants.end(),
                   [&rule](const ExperimentVariant& v) { return v.name == rule.variant; });
  if (it == x.variants.end()) {
    return fail(absl::StrCat("'variant' must name a treatment (not the control, '",
                             x.variants[0].name, "')"));
  }
  if (it->model.empty()) {
    return fail(absl::StrCat("variant '", rule.variant, "' has no 'model' to promote"));
  }
  rule.metric = (*t)["metric"].value_or(std::string("conversion"));
  if (rule.metric != "conversion" && rule.metric != "ctr") {
    return fail("'metric' must be \"conversion\" or \"ctr\"");
  }
  const std::optional<int64_t> n = (*t)["min_impressions"].value<int64_t>();
  if (t->contains("min_impressions") && (!n || *n < 1)) {
    return fail("'min_impressions' must be an integer >= 1");
  }
  rule.min_impressions = n.value_or(rule.min_impressions);
  const std::optional<double> margin = (*t)["margin"].value<double>();
  if (t->contains("margin") && (!margin || !std::isfinite(*margin) || *margin < 0)) {
    return fail("'margin' must be a number >= 0");
  }
  rule.margin = margin.value_or(0.0);
  return rule;
}

}  // namespace

absl::StatusOr<Experiment> Experiment::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read experiment file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

absl::StatusOr<Experiment> Experiment::Parse(std::string_view toml_text, const std::string& path) {
  toml::table t;
  try {  // Debian's toml++ is built with exceptions: a syntax error throws
    t = toml::parse(toml_text, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.source().begin.line, ":",
                                                   e.source().begin.column, ": ",
                                                   std::string(e.description())));
  }
  auto fail = [&path](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  for (const auto& [key, value] : t) {
    if (key != "name" && key != "salt" && key != "variant" && key != "promotion") {
      return fail(absl::StrCat("unknown key '", std::string(key.str()),
                               "' (known: name, salt, variant, promotion)"));
    }
  }
  Experiment x;
  x.name = t["name"].value_or(std::string());
  x.salt = t["salt"].value_or(std::string());
  if (x.name.empty()) return fail("'name' (a string) is required");
  if (x.salt.empty()) return fail("'salt' (a string) is required");
  const toml::array* variants = t["variant"].as_array();
  if (variants == nullptr || variants->empty()) {
    return fail("at least one [[variant]] is required");
  }
  absl::flat_hash_set<std::string> names;
  double total = 0.0;
  for (size_t i = 0; i < variants->size(); ++i) {
    const toml::table* v = (*variants)[i].as_table();
    const std::string where = absl::StrCat("variant ", i + 1);
    if (v == nullptr) return fail(absl::StrCat(where, " must be a table"));
    for (const auto& [key, value] : *v) {
      if (key != "name" && key != "share" && key != "ef_search" && key != "n" && key != "model") {
        return fail(absl::StrCat(where, ": unknown key '", std::string(key.str()),
                                 "' (known: name, share, ef_search, n, model)"));
      }
    }
    ExperimentVariant var;
    var.name = (*v)["name"].value_or(std::string());
    if (var.name.empty()) return fail(absl::StrCat(where, ": 'name' (a string) is required"));
    if (!names.insert(var.name).second) {
      return fail(absl::StrCat(where, ": the name '", var.name, "' is taken"));
    }
    const std::optional<double> share = (*v)["share"].value<double>();
    if (!share || !std::isfinite(*share) || *share < 0 || *share > 100) {
      return fail(absl::StrCat(where, " ('", var.name, "'): 'share' must be a number in [0, 100]"));
    }
    var.share = *share;
    total += var.share;
    const std::optional<int64_t> ef = (*v)["ef_search"].value<int64_t>();
    if ((*v).contains("ef_search") && (!ef || *ef < 0 || *ef > 4096)) {
      return fail(
          absl::StrCat(where, " ('", var.name, "'): 'ef_search' must be an integer in [0, 4096]"));
    }
    var.ef_search = static_cast<int>(ef.value_or(0));
    const std::optional<int64_t> n = (*v)["n"].value<int64_t>();
    if ((*v).contains("n") && (!n || *n < 0 || *n > 1000)) {
      return fail(absl::StrCat(where, " ('", var.name, "'): 'n' must be an integer in [0, 1000]"));
    }
    var.n = static_cast<int>(n.value_or(0));
    if ((*v).contains("model")) {
      const std::optional<std::string> model = (*v)["model"].value<std::string>();
      // A version of the models directory, by name: no path that leaves it.
      if (!model || model->empty() || model->find('/') != std::string::npos ||
          model->front() == '.') {
        return fail(absl::StrCat(where, " ('", var.name,
                                 "'): 'model' must name a version of the models directory, "
                                 "e.g. \"v000007\""));
      }
      var.model = *model;
    }
    x.variants.push_back(std::move(var));
  }
  if (total > 100.0 + 1e-9) {
    return fail(absl::StrCat("the shares add up to ", total, ", more than 100"));
  }
  if (t.contains("promotion")) {
    absl::StatusOr<PromotionRule> rule = ParsePromotion(t["promotion"].as_table(), x);
    if (!rule.ok()) return fail(std::string(rule.status().message()));
    x.promotion = *std::move(rule);
  }
  return x;
}

const ExperimentVariant* Experiment::Assign(std::string_view user) const {
  const std::string key = absl::StrCat(salt, ":", absl::string_view(user.data(), user.size()));
  const int bucket = static_cast<int>(XXH64(key.data(), key.size(), 0) % kBuckets);
  // Treatments first, in file order, the control last: ramping a treatment up takes buckets
  // from the control only. Ranges are whole buckets: a share of 12.5 owns 1,250 of them.
  int start = 0;
  for (size_t i = 1; i <= variants.size(); ++i) {
    const ExperimentVariant& v = variants[i % variants.size()];  // 1..n-1, then 0
    const int width = static_cast<int>(std::lround(v.share * kBuckets / 100.0));
    if (bucket < start + width) return &v;
    start += width;
  }
  return nullptr;
}

absl::Status ExperimentHolder::Reload() {
  absl::StatusOr<Experiment> x = Experiment::Load(path_);
  if (!x.ok()) return x.status();
  for (ExperimentVariant& v : x->variants) {
    if (v.model.empty()) continue;
    if (loader_ == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ": variant '", v.name, "': 'model' needs a server with a models directory"));
    }
    absl::StatusOr<std::shared_ptr<const ModelSnapshot>> snap = loader_(v.model);
    if (!snap.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": variant '", v.name, "': model '",
                                                     v.model, "': ", snap.status().message()));
    }
    v.snapshot = *std::move(snap);
  }
  auto next = std::make_shared<const Experiment>(*std::move(x));
  std::lock_guard<std::mutex> lock(mu_);
  if (outcome_ && outcome_->experiment != next->name) outcome_.reset();  // a new test
  current_ = std::move(next);
  return absl::OkStatus();
}

std::shared_ptr<const Experiment> ExperimentHolder::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

std::shared_ptr<const Experiment> ExperimentHolder::Serving() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcome_ ? nullptr : current_;
}

void ExperimentHolder::Decide(PromotionOutcome outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!outcome_) outcome_ = std::move(outcome);
}

std::optional<PromotionOutcome> ExperimentHolder::outcome() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outcome_;
}

PromotionDecision DecidePromotion(const PromotionRule& rule, const VariantComparison& control,
                                  const VariantComparison& variant) {
  PromotionDecision d;
  const Proportion& c = rule.metric == "ctr" ? control.ctr : control.conversion;
  const Proportion& v = rule.metric == "ctr" ? variant.ctr : variant.conversion;
  d.difference = v.rate - c.rate;
  const double se = c.trials > 0 && v.trials > 0
                        ? std::sqrt(c.rate * (1.0 - c.rate) / static_cast<double>(c.trials) +
                                    v.rate * (1.0 - v.rate) / static_cast<double>(v.trials))
                        : 0.0;
  constexpr double z = 1.6448536269514722;  // the 95% normal quantile (one-sided)
  d.lower_bound = d.difference - z * se;
  if (control.tally.impressions < rule.min_impressions ||
      variant.tally.impressions < rule.min_impressions) {
    return d;
  }
  d.state = d.lower_bound >= -rule.margin ? PromotionDecision::State::kPromote
                                          : PromotionDecision::State::kRefuse;
  return d;
}

Proportion WilsonInterval(int64_t successes, int64_t trials) {
  Proportion p;
  p.successes = successes;
  p.trials = trials;
  if (trials <= 0) return p;
  constexpr double z = 1.959963984540054;  // the 97.5% normal quantile
  const double n = static_cast<double>(trials);
  const double rate = static_cast<double>(successes) / n;
  const double denom = 1.0 + z * z / n;
  const double centre = (rate + z * z / (2.0 * n)) / denom;
  const double half = z * std::sqrt(rate * (1.0 - rate) / n + z * z / (4.0 * n * n)) / denom;
  p.rate = rate;
  p.low = std::max(0.0, centre - half);
  p.high = std::min(1.0, centre + half);
  return p;
}

ProportionTest TwoProportionTest(int64_t successes_a, int64_t trials_a, int64_t successes_b,
                                 int64_t trials_b) {
  ProportionTest t;
  if (trials_a <= 0 || trials_b <= 0) return t;
  const double na = static_cast<double>(trials_a), nb = static_cast<double>(trials_b);
  const double pa = successes_a / na, pb = successes_b / nb;
  t.difference = pb - pa;
  const double pooled = (successes_a + successes_b) / (na + nb);
  const double se = std::sqrt(pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb));
  if (se <= 0.0) return t;
  t.z = t.difference / se;
  t.p_value = std::erfc(std::abs(t.z) / std::sqrt(2.0));
  return t;
}

std::string ExperimentMetricsText(const Experiment& experiment,
                                  std::span<const VariantComparison> comparisons) {
  // Names come from the operator's file; quotes and backslashes are escaped all the same.
  auto label = [](const std::string& v) {
    std::string out;
    for (const char c : v) {
      if (c == '\\' || c == '"') out.push_back('\\');
      out.push_back(c == '\n' ? ' ' : c);
    }
    return out;
  };
  const std::string x = label(experiment.name);
  std::string out;
  const struct {
    const char* name;
    const char* help;
    Proportion VariantComparison::*rate;
  } rates[] = {
      {"recloop_experiment_ctr", "Credited clicks per list served, with its 95% interval",
       &VariantComparison::ctr},
      {"recloop_experiment_conversion", "Credited purchases per list served, with its 95% interval",
       &VariantComparison::conversion}};
  for (const auto& r : rates) {
    absl::StrAppend(&out, "# HELP ", r.name, " ", r.help, "\n# TYPE ", r.name, " gauge\n");
    for (size_t i = 0; i < comparisons.size() && i < experiment.variants.size(); ++i) {
      const Proportion& p = comparisons[i].*r.rate;
      const std::string v = label(experiment.variants[i].name);
      for (const auto& [bound, value] :
           {std::pair<const char*, double>{"rate", p.rate}, {"low", p.low}, {"high", p.high}}) {
        absl::StrAppend(&out, r.name, "{experiment=\"", x, "\",variant=\"", v, "\",bound=\"", bound,
                        "\"} ", value, "\n");
      }
    }
  }
  absl::StrAppend(&out,
                  "# HELP recloop_experiment_p_value Two-sided p-value of a treatment against "
                  "the control (pooled two-proportion z-test)\n"
                  "# TYPE recloop_experiment_p_value gauge\n");
  for (size_t i = 1; i < comparisons.size() && i < experiment.variants.size(); ++i) {
    const VariantComparison& c = comparisons[i];
    if (!c.ctr_test || !c.conversion_test) continue;
    const std::string v = label(experiment.variants[i].name);
    absl::StrAppend(&out, "recloop_experiment_p_value{experiment=\"", x, "\",variant=\"", v,
                    "\",metric=\"ctr\"} ", c.ctr_test->p_value, "\n",
                    "recloop_experiment_p_value{experiment=\"", x, "\",variant=\"", v,
                    "\",metric=\"conversion\"} ", c.conversion_test->p_value, "\n");
  }
  return out;
}

std::vector<VariantComparison> CompareVariants(std::span<const VariantTally> tallies) {
  std::vector<VariantComparison> out;
  for (const VariantTally& t : tallies) {
    VariantComparison c;
    c.tally = t;
    c.ctr = WilsonInterval(t.clicks, t.impressions);
    c.conversion = WilsonInterval(t.purchases, t.impressions);
    if (!out.empty()) {
      const VariantTally& control = tallies[0];
      c.ctr_test = TwoProportionTest(control.clicks, control.impressions, t.clicks, t.impressions);
      c.conversion_test =
          TwoProportionTest(control.purchases, control.impressions, t.purchases, t.impressions);
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace recloop
