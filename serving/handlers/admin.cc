// The admin routes: POST /v1/admin/retrain (?wait=true: answer with the outcome), GET
// /v1/admin/retrain (the last outcome), POST /v1/admin/rollback. The dispatcher has checked
// the API key (scope kAdmin).
#include "absl/strings/str_cat.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"

namespace recloop {
namespace {

HttpResponse RetrainingDisabled() {
  return JsonError(404, "retraining_disabled",
                   "this server has no retrainer (start it with --events)");
}

}  // namespace

HttpResponse GetRetrain(const RouteContext& ctx) {
  const RetrainControl* retrain = ctx.services.retrain;
  if (retrain == nullptr) return RetrainingDisabled();
  return RetrainStateJson(retrain->running(), retrain->Last());
}

HttpResponse PostRetrain(const RouteContext& ctx) {
  RetrainControl* retrain = ctx.services.retrain;
  if (retrain == nullptr) return RetrainingDisabled();
  bool wait = false;
  for (const auto& [key, value] : ctx.query) {
    if (key != "wait") {
      return JsonError(400, "unknown_parameter", absl::StrCat("unknown parameter '", key, "'"));
    }
    if (value != "true" && value != "false") {
      return JsonError(400, "bad_parameter", "wait must be true or false");
    }
    wait = value == "true";
  }
  auto outcome = retrain->RetrainNow(wait);
  if (absl::IsAlreadyExists(outcome.status())) {
    return JsonError(409, "retrain_running", std::string(outcome.status().message()));
  }
  if (!outcome.ok()) return JsonError(503, "stopping", std::string(outcome.status().message()));
  if (!outcome->has_value()) return StatusJson(202, "started");
  return RetrainOutcomeJson(**outcome);
}

HttpResponse PostRollback(const RouteContext& ctx) {
  RetrainControl* retrain = ctx.services.retrain;
  if (retrain == nullptr) return RetrainingDisabled();
  auto version = retrain->Rollback();
  if (absl::IsFailedPrecondition(version.status())) {
    return JsonError(409, "no_earlier_version", std::string(version.status().message()));
  }
  if (!version.ok()) return Internal(version.status());
  return ModelVersionJson(*version);
}

}  // namespace recloop
