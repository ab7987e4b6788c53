// RetrainControl: what the HTTP API needs of the background retrainer (POST/GET
// /v1/admin/retrain, POST /v1/admin/rollback, the events counted towards a retrain, its
// /metrics families), as an interface, so that the router and its tests do not pull in the
// training layer. serving/retrainer.h implements it.
#ifndef RECLOOP_SERVING_RETRAIN_CONTROL_H_
#define RECLOOP_SERVING_RETRAIN_CONTROL_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/event_store.h"

namespace recloop {

// The gate's verdict as the admin API shows it (from training/retrain.h GateResult).
struct RetrainGate {
  std::string metric;  // empty: the gate compared nothing
  double candidate = 0.0;
  double live = 0.0;
  bool skipped = false;
  bool passed = false;
};

// The outcome of one retrain.
struct RetrainOutcome {
  std::string outcome;         // "promoted", "refused", "skipped" (nothing new), "discarded"
                               // (the live model changed meanwhile) or "failed"
  std::string version;         // the version written (promoted or refused), if any
  std::string parent_version;  // the live version it started from
  std::string message;         // the gate's reason or the error
  RetrainGate gate;
  int64_t new_events = 0;
  double seconds = 0.0;
  std::string finished_utc;
};

// Thread safety: implementations allow every method from any thread.
class RetrainControl {
 public:
  virtual ~RetrainControl() = default;

  // Tells the retrainer that `events` were stored (they count towards its next retrain).
  virtual void NoteEvents(std::span<const Event> events) = 0;

  // Starts a retrain now. With `wait`, blocks until it finishes and returns its outcome;
  // otherwise returns nullopt at once. Errors: AlreadyExists if one is already running;
  // another error (e.g. Cancelled) if the retrainer is stopping.
  virtual absl::StatusOr<std::optional<RetrainOutcome>> RetrainNow(bool wait) = 0;

  // Swaps the version before the live one back in; returns the version now live. Errors:
  // FailedPrecondition if there is no earlier version; the loader's errors.
  virtual absl::StatusOr<std::string> Rollback() = 0;

  // Swaps `version` of the models directory in and makes it `current` (the online gate's
  // promotion, serving/online_gate.h). Errors: the loader's; Unimplemented where not supported.
  virtual absl::Status Promote(const std::string& version) {
    return absl::UnimplementedError("this server cannot promote " + version);
  }

  // Whether a retrain runs now, and the last finished one's outcome (nullopt before the first).
  virtual bool running() const = 0;
  virtual std::optional<RetrainOutcome> Last() const = 0;

  // Prometheus text of the retrainer's counters, appended to /metrics.
  virtual std::string RenderMetrics() const = 0;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_RETRAIN_CONTROL_H_
