// RunServe: the whole server process behind `recloop serve`: opens the live model and the
// catalogue, starts the HTTP server with the API, logs, and serves until SIGINT/SIGTERM, after
// which requests in flight are finished and it returns.
#ifndef RECLOOP_SERVING_SERVE_H_
#define RECLOOP_SERVING_SERVE_H_

#include <string>

#include "absl/status/status.h"
#include "serving/api.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "serving/retrainer.h"

namespace recloop {

struct ServeOptions {
  LiveModelOptions model;
  HttpServerOptions http;
  ApiOptions api;
  // Access log: one line per request on stderr (method, path, status, microseconds, model
  // version), for every access_log_every-th request; 0 = off (the default).
  int access_log_every = 0;
  // The event store that POST /v1/feedback writes to (created when missing); empty = no
  // feedback routes.
  std::string events_path;
  // Background retraining from the event store (needs events_path).
  RetrainerOptions retrain;
};

// Serves until a signal (or a fatal start-up error). Errors: the live model's (a corrupted
// model, an unusable catalogue), InvalidArgument for bad options, Unavailable if the address
// cannot be bound.
absl::Status RunServe(const ServeOptions& options);

}  // namespace recloop

#endif  // RECLOOP_SERVING_SERVE_H_
