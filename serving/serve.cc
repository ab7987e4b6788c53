#include "serving/serve.h"

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/logger.h"
#include "data/pg_db.h"
#include "engine/status_macros.h"
#include "serving/api_keys.h"
#include "serving/cache_warmer.h"
#include "serving/cors.h"
#include "serving/feedback_folder.h"
#include "serving/ranked_cache.h"
#include "serving/replica_follower.h"

namespace recloop {
namespace {

// Secure by default: without a key, only this machine may write. Refuses (before anything is
// opened or bound) to serve another address open, unless told to; says what it does.
absl::Status CheckExposure(const ServeOptions& options, Logger* log) {
  if (!options.api.api_key.empty() || !options.key_file.empty()) return absl::OkStatus();
  const std::string& host = options.http.host;
  if (IsLoopbackHost(host)) {
    log->Warning(
        "no API key: every write is open, to this machine only (%s); give a key "
        "(--api-key-file, RECLOOP_API_KEY or --key-file) before serving other hosts",
        host);
    return absl::OkStatus();
  }
  if (!options.insecure_no_auth) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to serve ", host,
        " without an API key: anyone who can reach it could write feedback, change the "
        "catalogue and erase users. Give a key (--api-key-file FILE [--create-api-key-file], "
        "RECLOOP_API_KEY or --key-file FILE), or bind 127.0.0.1 (or, knowingly, "
        "--insecure-no-auth)"));
  }
  log->Warning(
      "--insecure-no-auth: serving %s WITHOUT AUTHENTICATION: anyone who can reach it may "
      "write feedback, change the catalogue and erase users",
      host);
  return absl::OkStatus();
}

// Refuses a malformed CORS origin before anything is opened; says which origins browsers let
// call the API, warning for "*" and for open writes.
absl::Status CheckCors(const ServeOptions& options, Logger* log) {
  const CorsOptions& cors = options.api.cors;
  RETURN_IF_ERROR(ValidateCorsOptions(cors));
  if (cors.allowed_origins.empty()) return absl::OkStatus();
  log->Info("CORS: pages on %s may call the API from browsers",
            absl::StrJoin(cors.allowed_origins, ", "));
  if (options.api.api_key.empty() && options.key_file.empty()) {
    log->Warning("no API key: those pages may also write, from any visitor's browser");
  }
  for (const std::string& origin : cors.allowed_origins) {
    if (origin == "*") {
      log->Warning(
          "--cors-origin '*': a page on ANY site may call the API from its visitors' browsers");
    }
  }
  return absl::OkStatus();
}

// The keys of ServeOptions: the key file's and the legacy key.
absl::StatusOr<std::vector<ApiKey>> LoadKeys(const ServeOptions& options) {
  std::vector<ApiKey> keys;
  if (!options.key_file.empty()) {
    ASSIGN_OR_RETURN(keys, ReadKeyFile(options.key_file));
  }
  if (!options.api.api_key.empty()) keys.push_back(LegacyApiKey(options.api.api_key));
  return keys;
}

// A key file that holds no key (empty, or comments only) closes every route that needs a key:
// safe, but surely not what was meant. Says so at start and on each SIGHUP that reads one.
void WarnIfNoKeys(const ServeOptions& options, size_t keys, Logger* log) {
  if (keys > 0 || options.key_file.empty()) return;
  log->Warning(
      "%s holds no key: every route that needs one (feedback, catalogue, erasure, admin%s) "
      "answers 401 until it does (add a line NAME SCOPES SHA256HEX and send SIGHUP)",
      options.key_file, options.api.auth_reads ? ", reads" : "");
}

// The A/B test of --experiment (null without one). A variant's `model` is a version of the
// models directory, loaded as a swap would load it (not published).
absl::StatusOr<std::unique_ptr<ExperimentHolder>> OpenExperiment(const ServeOptions& options,
                                                                 LiveModel* live, bool events,
                                                                 Logger* log) {
  if (options.experiment_path.empty()) return nullptr;
  auto experiment = std::make_unique<ExperimentHolder>(
      options.experiment_path, [live](const std::string& version) {
        return live->Prepare(live->models_dir() + "/" + version);
      });
  RETURN_IF_ERROR(experiment->Reload());
  const auto x = experiment->Get();
  if (x->promotion && !events) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.experiment_path,
        ": [promotion] needs --events (attribution counts the purchases it compares, and the "
        "retrainer's swap promotes)"));
  }
  log->Info("experiment '%s': %d variants from %s", x->name, static_cast<int>(x->variants.size()),
            options.experiment_path);
  return experiment;
}

// What a server with an event store runs beside the Api.
struct FeedbackLoop {
  std::unique_ptr<Retrainer> retrainer;
  std::unique_ptr<ReplicaFollower> follower;  // on a store shared with other replicas
};

// The restart catch-up, then the retrainer and, on a shared store, the replica follower.
absl::StatusOr<FeedbackLoop> StartFeedbackLoop(const ServeOptions& options, LiveModel* live,
                                               EventStore* events, FeedbackFolder* folder,
                                               Metrics* metrics, Logger* log) {
  // Where a replica starts following a shared store: events after this are folded in by the
  // follower, those before by the catch-up below (an event seen by both ends the same).
  ASSIGN_OR_RETURN(const int64_t start_seq, events->LastSeq());
  // The overlay lives in memory: fold in again everyone with feedback newer than the model
  // (before the retrainer starts, so that no swap runs meanwhile, and before the server
  // listens, so that a restarted replica answers /readyz only once caught up).
  ASSIGN_OR_RETURN(const int64_t restored, folder->RestoreFolds());
  if (restored > 0) log->Info("folded in %d users with feedback newer than the model", restored);
  FeedbackLoop loop;
  loop.retrainer = std::make_unique<Retrainer>(live, events, folder, options.retrain, metrics, log);
  if (!events->shared()) return loop;
  // Another replica's events, erasures, catalogue changes, promotions and rollbacks reach this
  // one.
  loop.follower = std::make_unique<ReplicaFollower>(
      events, folder, ReplicaFollowerOptions{.start_seq = start_seq},
      [r = loop.retrainer.get(), live, log] {
        r->FollowCurrent();
        if (absl::Status s = live->FollowCatalog(); !s.ok()) {
          log->Warning("following the catalogue: %s", s.ToString());
        }
      },
      log);
  log->Info("following the shared event store %s from seq %d", events->path(), start_seq);
  if (!IsPostgresUrl(live->catalog_path())) {
    log->Warning(
        "the catalogue %s is this server's own: catalogue changes made on other replicas "
        "reach this one only when it restarts (give --catalog postgresql://... to share it)",
        live->catalog_path());
  }
  return loop;
}

}  // namespace

absl::Status RunServe(const ServeOptions& options) {
  if (options.access_log_every < 0) {
    return absl::InvalidArgumentError("access_log_every must be >= 0");
  }
  RETURN_IF_ERROR(Api::Validate(options.api));
  StderrLogger log("recloop serve: ");
  RETURN_IF_ERROR(CheckExposure(options, &log));
  RETURN_IF_ERROR(CheckCors(options, &log));
  // Bad HTTP options or TLS files fail here, before the model is opened.
  RETURN_IF_ERROR(HttpServer::CheckOptions(options.http));
  ASSIGN_OR_RETURN(std::vector<ApiKey> initial_keys, LoadKeys(options));
  WarnIfNoKeys(options, initial_keys.size(), &log);
  ApiKeys keys(!options.api.api_key.empty() || !options.key_file.empty(), std::move(initial_keys));
  ASSIGN_OR_RETURN(std::unique_ptr<LiveModel> live, LiveModel::Open(options.model));
  std::unique_ptr<EventStore> events;
  if (!options.events_path.empty()) {
    ASSIGN_OR_RETURN(
        events, EventStore::Open({.path = options.events_path, .writer_nice = options.write_nice}));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ExperimentHolder> experiment,
                   OpenExperiment(options, live.get(), events != nullptr, &log));
  Metrics metrics;
  // The one fold path, shared by the Api, the retrainer and the restart catch-up below.
  FoldQueueOptions fold = options.api.fold;
  fold.nice = options.write_nice;
  FeedbackFolder folder(live.get(), events.get(), options.api.feedback, fold, &metrics, &log);
  std::unique_ptr<Retrainer> retrainer;
  std::unique_ptr<ReplicaFollower> follower;
  if (events != nullptr) {
    ASSIGN_OR_RETURN(FeedbackLoop loop,
                     StartFeedbackLoop(options, live.get(), events.get(), &folder, &metrics, &log));
    retrainer = std::move(loop.retrainer);
    follower = std::move(loop.follower);
  }
  // Users' ranked candidates, warmed in the background after each model goes live.
  RankedCache ranked_cache(options.api.ranked_cache);
  std::unique_ptr<CacheWarmer> warmer;
  if (ranked_cache.enabled() && options.warm_cache) {
    warmer =
        std::make_unique<CacheWarmer>(live.get(), &folder, &ranked_cache,
                                      CacheWarmerOptions{.ef_search = options.api.ef_search}, &log);
  }
  std::unique_ptr<HttpServer> server;
  Api api({.live = live.get(),
           .metrics = &metrics,
           .connections = [&server] { return server->open_connections(); },
           .events = events.get(),
           .folder = &folder,
           .retrain = retrainer.get(),
           .keys = &keys,
           .log = &log,
           .ranked_cache = &ranked_cache,
           .experiment = experiment.get(),
           .follower = follower.get()},
          options.api);
  std::atomic<uint64_t> requests{0};
  LiveModel* live_ptr = live.get();
  const int every = options.access_log_every;
  auto observer = [&metrics, &requests, live_ptr, every](const HttpRequest& req,
                                                         const HttpResponse& res, double micros) {
    metrics.Observe(res.route, res.status, micros);
    // The router counts its own limits' 429s; the server's per-connection one is counted here.
    if (res.rate_limited_by == "connection") metrics.CountRateLimited("connection");
    if (every > 0 && requests.fetch_add(1) % every == 0) {
      const auto snap = live_ptr->Get();
      // The path only: query strings may carry IDs a log should not keep.
      const std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
      std::fprintf(stderr, "access %s %.*s %d %.0fus %s\n",
                   req.method.empty() ? "-" : req.method.c_str(), static_cast<int>(path.size()),
                   path.data(), res.status, micros, snap ? snap->version().c_str() : "-");
    }
  };
  HttpServerOptions http = options.http;
  http.blocking_nice = options.write_nice;
  ASSIGN_OR_RETURN(server,
                   HttpServer::Create(
                       http, [&api](const HttpRequest& r) { return api.Handle(r); }, observer));
  RETURN_IF_ERROR(server->Start());
  // SIGHUP re-reads the experiment file and the key file: a bad file keeps what is in force.
  server->StopOnSignals([&options, &keys, &log, &experiment] {
    if (experiment != nullptr) {
      if (absl::Status s = experiment->Reload(); !s.ok()) {
        log.Error("SIGHUP: kept experiment '%s': %s", experiment->Get()->name, s.ToString());
      } else {
        log.Info("SIGHUP: re-read experiment '%s' from %s", experiment->Get()->name,
                 experiment->path());
      }
    }
    if (options.key_file.empty()) return log.Info("SIGHUP: no --key-file to re-read");
    absl::StatusOr<std::vector<ApiKey>> fresh = LoadKeys(options);
    if (!fresh.ok()) {
      return log.Error("SIGHUP: kept the %d keys in use: %s", keys.size(),
                       fresh.status().ToString());
    }
    const size_t n = fresh->size();
    WarnIfNoKeys(options, n, &log);
    keys.Replace(*std::move(fresh));
    log.Info("SIGHUP: re-read %s, %d keys", options.key_file, n);
  });
  const auto snap = live->Get();
  std::fprintf(stderr, "recloop serve: listening on %s://%s:%u/ (model %s)\n",
               server->tls() ? "https" : "http", options.http.host.c_str(), server->port(),
               snap ? snap->version().c_str() : "none yet");
  server->Run();
  std::fprintf(stderr, "recloop serve: stopped\n");
  return absl::OkStatus();
}

}  // namespace recloop
