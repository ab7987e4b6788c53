#include "serving/serve.h"

#include <atomic>
#include <cstdio>
#include <memory>

#include "base/logger.h"
#include "engine/status_macros.h"
#include "serving/feedback_folder.h"

namespace recloop {

absl::Status RunServe(const ServeOptions& options) {
  if (options.access_log_every < 0) {
    return absl::InvalidArgumentError("access_log_every must be >= 0");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<LiveModel> live, LiveModel::Open(options.model));
  std::unique_ptr<EventStore> events;
  if (!options.events_path.empty()) {
    ASSIGN_OR_RETURN(events, EventStore::Open({options.events_path}));
  }
  Metrics metrics;
  StderrLogger log("recloop serve: ");
  // The one fold path, shared by the Api, the retrainer and the restart catch-up below.
  FeedbackFolder folder(live.get(), events.get(), options.api.feedback, options.api.fold_threads,
                        &metrics, &log);
  std::unique_ptr<Retrainer> retrainer;
  if (events != nullptr) {
    // The overlay lives in memory: fold in again everyone with feedback newer than the model
    // (before the retrainer starts, so that no swap runs meanwhile).
    ASSIGN_OR_RETURN(const int64_t restored, folder.RestoreFolds());
    if (restored > 0) {
      log.Info("folded in %d users with feedback newer than the model", restored);
    }
    retrainer = std::make_unique<Retrainer>(live.get(), events.get(), &folder, options.retrain,
                                            &metrics, &log);
  }
  std::unique_ptr<HttpServer> server;
  Api api({.live = live.get(),
           .metrics = &metrics,
           .connections = [&server] { return server->open_connections(); },
           .events = events.get(),
           .folder = &folder,
           .retrain = retrainer.get()},
          options.api);
  std::atomic<uint64_t> requests{0};
  LiveModel* live_ptr = live.get();
  const int every = options.access_log_every;
  auto observer = [&metrics, &requests, live_ptr, every](const HttpRequest& req,
                                                        const HttpResponse& res, double micros) {
    metrics.Observe(res.route, res.status, micros);
    if (every > 0 && requests.fetch_add(1) % every == 0) {
      const auto snap = live_ptr->Get();
      // The path only: query strings may carry IDs a log should not keep.
      const std::string_view path = std::string_view(req.target).substr(0, req.target.find('?'));
      std::fprintf(stderr, "access %s %.*s %d %.0fus %s\n",
                   req.method.empty() ? "-" : req.method.c_str(), static_cast<int>(path.size()),
                   path.data(), res.status, micros, snap ? snap->version().c_str() : "-");
    }
  };
  ASSIGN_OR_RETURN(server, HttpServer::Create(
                               options.http,
                               [&api](const HttpRequest& r) { return api.Handle(r); }, observer));
  RETURN_IF_ERROR(server->Start());
  server->StopOnSignals();
  const auto snap = live->Get();
  std::fprintf(stderr, "recloop serve: listening on http://%s:%u/ (model %s)\n",
               options.http.host.c_str(), server->port(),
               snap ? snap->version().c_str() : "none yet");
  server->Run();
  std::fprintf(stderr, "recloop serve: stopped\n");
  return absl::OkStatus();
}

}  // namespace recloop
