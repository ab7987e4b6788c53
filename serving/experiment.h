// A/B tests of serving (`recloop serve --experiment FILE`): customers split deterministically
// into variants by a salted hash of their ID, each variant served with its own parameters, and
// the statistics that compare them (serving/impression_log.h counts what each variant earned).
//
// The file is TOML (toml++, Debian's libtomlplusplus-dev):
//
//   name = "beam-width"
//   salt = "2026-12"          # a new salt reshuffles everyone; keep it for the test's life
//   [[variant]]               # the first variant is the control
//   name = "control"
//   share = 80                # percent of customers
//   [[variant]]
//   name = "narrow-beam"
//   share = 20
//   ef_search = 16            # the variant's serving parameters (0 or absent: the server's)
//   n = 20                    # its list length when a request names none
//   model = "v000007"         # served by this version of the models directory (absent: live)
//   [promotion]               # optional: the online gate (DecidePromotion)
//   variant = "narrow-beam"   # a treatment with a `model`
//   metric = "conversion"     # or "ctr"
//   min_impressions = 2000    # lists served to each of the control and the variant
//   margin = 0.0              # promote when (variant - control) >= -margin at 95%
//
// Assignment: bucket = XXH64(salt ":" user) mod 10,000, and each variant owns a range of buckets
// in the file's order, the control last. A customer's variant is the same on every request
// and every replica (sticky, with no state), and ramping a treatment's share up only moves
// control customers into it: treatment customers stay where they were. Shares must add up to
// at most 100; customers in the rest are outside the test and served as without one.
#ifndef RECLOOP_SERVING_EXPERIMENT_H_
#define RECLOOP_SERVING_EXPERIMENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace recloop {

struct ModelSnapshot;  // serving/live_model.h

struct ExperimentVariant {
  std::string name;
  double share = 0.0;  // percent of customers
  int ef_search = 0;   // HNSW beam of this variant's searches; 0 = the server's
  int n = 0;           // list length when a request names none; 0 = the server's --default-n
  // The version of the server's models directory ("v000007") this variant's customers are
  // served by, e.g. a model of another algorithm or a retrain not yet promoted; empty = the
  // live model.
  std::string model;
  // That version, loaded by ExperimentHolder (null: the live model).
  std::shared_ptr<const ModelSnapshot> snapshot;
};

// The online gate: a treatment's model is promoted when, once the control and the treatment
// have each served min_impressions lists, the one-sided 95% lower bound of (treatment rate -
// control rate) is at least -margin (normal approximation, unpooled standard error), and
// refused otherwise. It is decided once, at that point (no peeking at earlier counts), and the
// decision ends the test.
struct PromotionRule {
  std::string variant;                // a treatment with a `model`
  std::string metric = "conversion";  // "conversion" (purchases per list) or "ctr"
  int64_t min_impressions = 1000;     // >= 1
  double margin = 0.0;                // absolute, >= 0; 0: promote only when shown better
};

struct Experiment {
  std::string name;
  std::string salt;
  std::vector<ExperimentVariant> variants;  // variants[0] is the control
  std::optional<PromotionRule> promotion;

  // Errors (InvalidArgument) name the file and, for a syntax error, its line and column.
  static absl::StatusOr<Experiment> Load(const std::string& path);
  static absl::StatusOr<Experiment> Parse(std::string_view toml, const std::string& path);

  // The variant of `user`, or null when the user falls outside the test (shares under 100).
  const ExperimentVariant* Assign(std::string_view user) const;
};

// What the online gate decided (ExperimentHolder::Decide).
struct PromotionOutcome {
  std::string experiment;  // the experiment's name
  std::string variant;
  std::string state;    // "promoted", "refused" or "failed" (promotion refused by the swap)
  std::string message;  // what was compared, or the swap's error
  double difference = 0.0, lower_bound = 0.0;
  int64_t control_impressions = 0, variant_impressions = 0;
};

// Loads a version of the models directory for a variant (serve: LiveModel::Prepare).
using VariantModelLoader =
    std::function<absl::StatusOr<std::shared_ptr<const ModelSnapshot>>(const std::string& model)>;

// The experiment in force, swapped whole on SIGHUP (Reload), with the gate's decision.
// Thread safety: every method may be called from any thread.
class ExperimentHolder {
 public:
  // `loader` loads the variants' `model`s; null: a variant with a model is an error.
  explicit ExperimentHolder(std::string path, VariantModelLoader loader = nullptr)
      : path_(std::move(path)), loader_(std::move(loader)) {}
  // Reads the file and loads its variants' models; on an error (naming the file and the
  // variant) the experiment in force (if any) stays. A file with another name starts a new test
  // (a decision of the old one no longer applies).
  absl::Status Reload();
  std::shared_ptr<const Experiment> Get() const;
  // The experiment customers are assigned by: Get() until the gate decides, then null (the test
  // has ended: everyone is served the live model, with no variant).
  std::shared_ptr<const Experiment> Serving() const;
  const std::string& path() const { return path_; }

  // Records the gate's decision on the experiment in force (the first one only).
  void Decide(PromotionOutcome outcome);
  std::optional<PromotionOutcome> outcome() const;

 private:
  const std::string path_;
  const VariantModelLoader loader_;
  mutable std::mutex mu_;
  std::shared_ptr<const Experiment> current_ ABSL_GUARDED_BY(mu_);
  std::optional<PromotionOutcome> outcome_ ABSL_GUARDED_BY(mu_);
};

// A proportion with its 95% Wilson score interval (better behaved than the normal interval at
// small counts and rates near 0).
struct Proportion {
  int64_t successes = 0;
  int64_t trials = 0;
  double rate = 0.0;
  double low = 0.0;
  double high = 0.0;
};
Proportion WilsonInterval(int64_t successes, int64_t trials);

// The two-proportion z-test of B against A with the pooled standard error: difference
// (rate B - rate A), z, and the two-sided p-value. z and p are 0 and 1 when either side has no
// trials or the pooled rate is 0 or 1.
struct ProportionTest {
  double difference = 0.0;
  double z = 0.0;
  double p_value = 1.0;
};
ProportionTest TwoProportionTest(int64_t successes_a, int64_t trials_a, int64_t successes_b,
                                 int64_t trials_b);

// What one variant's lists earned (serving/impression_log.h counts them live; `recloop
// experiments report` from the event store).
struct VariantTally {
  std::string name;
  int64_t impressions = 0;  // lists served
  int64_t clicks = 0;       // credited events, by type
  int64_t carts = 0;
  int64_t purchases = 0;
};

// A variant's rates with their intervals and, for a treatment, its tests against the control.
struct VariantComparison {
  VariantTally tally;
  Proportion ctr;                                           // clicks per list
  Proportion conversion;                                    // purchases per list
  std::optional<ProportionTest> ctr_test, conversion_test;  // none for the control
};

// One comparison per tally, in order; tallies[0] is the control.
std::vector<VariantComparison> CompareVariants(std::span<const VariantTally> tallies);

// The online gate's verdict on `variant` against `control` under `rule` (PromotionRule).
struct PromotionDecision {
  enum class State { kWaiting, kPromote, kRefuse };
  State state = State::kWaiting;
  double difference = 0.0;   // variant rate - control rate
  double lower_bound = 0.0;  // its one-sided 95% lower bound
};
PromotionDecision DecidePromotion(const PromotionRule& rule, const VariantComparison& control,
                                  const VariantComparison& variant);

// /metrics text of an experiment's comparisons (aligned with its variants): per variant, CTR
// and conversion with their 95% interval (recloop_experiment_ctr / _conversion, bound="rate",
// "low", "high") and, for treatments, the p-value against the control
// (recloop_experiment_p_value, metric="ctr" or "conversion").
std::string ExperimentMetricsText(const Experiment& experiment,
                                  std::span<const VariantComparison> comparisons);

}  // namespace recloop

#endif  // RECLOOP_SERVING_EXPERIMENT_H_
