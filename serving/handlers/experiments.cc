// GET /v1/admin/experiments: the A/B test in force (serving/experiment.h) and, per variant,
// what its lists earned (serving/impression_log.h), with 95% intervals and the two-proportion
// test of each treatment against the control.
#include <string>
#include <vector>

#include "serving/experiment.h"
#include "serving/handlers/handlers.h"
#include "serving/impression_log.h"
#include "serving/json_codec.h"
#include "serving/online_gate.h"

namespace recloop {

HttpResponse GetExperiments(const RouteContext& ctx) {
  const auto experiment =
      ctx.services.experiment != nullptr ? ctx.services.experiment->Get() : nullptr;
  if (experiment == nullptr) {
    return JsonError(404, "no_experiment", "the server runs no experiment (serve --experiment)");
  }
  return ExperimentReportJson(*experiment, LiveComparisons(*experiment, ctx.services.impressions),
                              ctx.services.experiment->outcome());
}

}  // namespace recloop
