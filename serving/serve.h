// RunServe: the whole server process behind `recloop serve`: opens the live model and the
// catalogue, starts the HTTP server with the API, logs, and serves until SIGINT/SIGTERM, after
// which requests in flight are finished and it returns. Secure by default: without any key it
// serves loopback addresses only (see ServeOptions::insecure_no_auth).
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
  // An A/B test of serving (serving/experiment.h), TOML, re-read on SIGHUP; empty = none.
  std::string experiment_path;
  // Background retraining from the event store (needs events_path).
  RetrainerOptions retrain;
  // Scoped keys (serving/api_keys.h), re-read on SIGHUP (a bad file keeps the old keys);
  // empty = none. api.api_key, if set too, is accepted beside them with every scope.
  std::string key_file;
  // Without any key (api.api_key, key_file) the server binds loopback addresses only and
  // refuses any other host, unless this is set (then it warns on every start). Default false.
  bool insecure_no_auth = false;
  // After each model goes live, rank its most active users into the ranked cache in the
  // background (serving/cache_warmer.h), at the lowest CPU priority. Default true.
  bool warm_cache = true;
  // Nice value (0..19) of the threads that take writes: the blocking threads (writes wait there
  // for their commit), the SQLite store's writer and the fold threads. Reads run on the I/O
  // threads at the server's own priority, so under CPU contention a customer's list comes before
  // an event's acknowledgment and its fold (BENCHMARKS.md, issue 22). Nothing acknowledged is
  // dropped for it; writes wait longer. A read never waits for a folder thread (it folds the
  // customer itself, FoldQueue::EnsureFresh). Default 10.
  int write_nice = 10;
};

// Serves until a signal (or a fatal start-up error). Errors: FailedPrecondition (before
// anything is opened or bound) for a non-loopback host without any key and without
// insecure_no_auth; the HTTP options' and TLS files' (HttpServer::CheckOptions, also before
// anything is opened); the key file's (ReadKeyFile); the live model's (a corrupted model, an
// unusable catalogue), InvalidArgument for bad options, Unavailable if the address cannot be
// bound.
absl::Status RunServe(const ServeOptions& options);

}  // namespace recloop

#endif  // RECLOOP_SERVING_SERVE_H_
