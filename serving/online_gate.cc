#include "serving/online_gate.h"

#include <map>
#include <utility>

#include "absl/strings/str_format.h"

namespace recloop {

std::vector<VariantComparison> LiveComparisons(const Experiment& experiment,
                                               const ImpressionLog* impressions) {
  std::map<std::string, ImpressionLog::VariantCounts> counts;
  if (impressions != nullptr) counts = impressions->CountsByVariant();
  std::vector<VariantTally> tallies;
  for (const ExperimentVariant& v : experiment.variants) {
    const ImpressionLog::VariantCounts& c = counts[v.name];
    auto credited = [&c](const char* type) {
      const auto it = c.credited.find(type);
      return it == c.credited.end() ? int64_t{0} : it->second;
    };
    tallies.push_back(
        {v.name, c.impressions, credited("click"), credited("cart"), credited("purchase")});
  }
  return CompareVariants(tallies);
}

OnlineGate::OnlineGate(ExperimentHolder* experiment, const ImpressionLog* impressions,
                       Promote promote, Logger* log, std::chrono::milliseconds every)
    : experiment_(experiment), impressions_(impressions), promote_(std::move(promote)), log_(log) {
  if (every.count() <= 0) return;
  thread_ = std::thread([this, every] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!wake_.wait_for(lock, every, [this] { return stop_; })) {
      lock.unlock();
      CheckNow();
      lock.lock();
    }
  });
}

OnlineGate::~OnlineGate() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OnlineGate::CheckNow() {
  std::lock_guard<std::mutex> one_at_a_time(check_mu_);
  const auto x = experiment_->Serving();  // null: no test, or already decided
  if (x == nullptr || !x->promotion) return;
  const PromotionRule& rule = *x->promotion;
  size_t at = 0;
  while (at < x->variants.size() && x->variants[at].name != rule.variant) ++at;
  if (at == 0 || at == x->variants.size()) return;  // Parse guarantees a treatment
  const std::vector<VariantComparison> c = LiveComparisons(*x, impressions_);
  const PromotionDecision d = DecidePromotion(rule, c[0], c[at]);
  if (d.state == PromotionDecision::State::kWaiting) return;
  PromotionOutcome out;
  out.experiment = x->name;
  out.variant = rule.variant;
  out.difference = d.difference;
  out.lower_bound = d.lower_bound;
  out.control_impressions = c[0].tally.impressions;
  out.variant_impressions = c[at].tally.impressions;
  out.message = absl::StrFormat(
      "%s of '%s' minus '%s' = %+.4f, one-sided 95%% lower bound %+.4f (promoted at >= %.4f), "
      "after %d and %d lists",
      rule.metric, rule.variant, x->variants[0].name, d.difference, d.lower_bound,
      rule.margin > 0 ? -rule.margin : 0.0, out.variant_impressions, out.control_impressions);
  const std::string& version = x->variants[at].model;
  if (d.state == PromotionDecision::State::kRefuse) {
    out.state = "refused";
    log_->Info("experiment '%s': refused %s (model %s): %s", x->name, rule.variant, version,
               out.message);
  } else if (absl::Status s = promote_ != nullptr
                                  ? promote_(version)
                                  : absl::FailedPreconditionError("no retrainer to swap with");
             !s.ok()) {
    out.state = "failed";
    out.message = absl::StrCat("promoting ", version, " failed: ", s.message());
    log_->Error("experiment '%s': %s", x->name, out.message);
  } else {
    out.state = "promoted";
    log_->Info("experiment '%s': promoted %s (model %s): %s", x->name, rule.variant, version,
               out.message);
  }
  experiment_->Decide(std::move(out));
}

}  // namespace recloop
