// GET /v1/admin/experiments: the A/B test in force (serving/experiment.h) and, per variant,
// what its lists earned (serving/impression_log.h), with 95% intervals and the two-proportion
// test of each treatment against the control.
#include <map>
#include <string>
#include <vector>

#include "serving/experiment.h"
#include "serving/handlers/handlers.h"
#include "serving/impression_log.h"
#include "serving/json_codec.h"

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

HttpResponse GetExperiments(const RouteContext& ctx) {
  const auto experiment =
      ctx.services.experiment != nullptr ? ctx.services.experiment->Get() : nullptr;
  if (experiment == nullptr) {
    return JsonError(404, "no_experiment", "the server runs no experiment (serve --experiment)");
  }
  return ExperimentReportJson(*experiment, LiveComparisons(*experiment, ctx.services.impressions));
}

}  // namespace recloop
