// Api: the router of the HTTP API. A pure function of the request and the live model (no socket,
// no Beast): the server calls it on its I/O threads, tests and the fuzz target call it directly.
//
//   GET    /v1/users/{user}/recommendations?n=&offset=&category=&exclude=&details=
//   GET    /v1/items/{item}/similar?n=&offset=&category=&exclude=&details=
//   GET    /v1/popular?n=&offset=&category=&details=
//   GET    /v1/items/{item}            the item's catalogue entry
//   PUT    /v1/items/{item}            {"title":"...","categories":[...],"available":true} (write)
//   DELETE /v1/items/{item}            mark unavailable                        (write)
//   GET    /v1/users?n=&offset=        a page of the live model's customer IDs, {"users","total"}
//   GET    /v1/model                   version and lineage of the live model
//   POST   /v1/feedback                [{"user","item","type","value"?,"timestamp"?,"id"?}] (write)
//   GET    /v1/users/{user}/feedback   the user's stored events (?limit=)
//   DELETE /v1/users/{user}            erase the user's events and folded vector       (write)
//   POST   /v1/admin/retrain           retrain now (?wait=true: answer with the outcome) (admin)
//   GET    /v1/admin/retrain           the last retrain's outcome                         (admin)
//   POST   /v1/admin/rollback          swap the version before the live one back in       (admin)
//   GET    /healthz  /readyz  /metrics
//   GET    /  (and /storefront.js, /storefront.css)  the demo storefront page (serving/storefront.h)
//
// Errors are {"error":{"code":"...","message":"..."}}: 400 bad parameter, 401 missing or wrong
// API key, 403 admin route without a configured API key, 404 unknown route/item, 405 wrong
// method (with Allow), 409 a retrain already running / nothing to roll back to, 411 write
// without a length, 413/431 (from the server) oversized body/header, 415 non-JSON body, 503 no
// model loaded yet. Admin routes always need the API key (and answer 403 when none is set).
#ifndef RECLOOP_SERVING_API_H_
#define RECLOOP_SERVING_API_H_

#include <functional>
#include <string>

#include "data/event_store.h"
#include "serving/feedback.h"
#include "serving/feedback_folder.h"
#include "serving/http.h"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "serving/retrainer.h"

namespace recloop {

struct ApiOptions {
  // Results when a request gives no n.
  int default_n = 10;
  // Largest n (and offset + n) a request may ask for; larger is a 400.
  int max_n = 1000;
  // Bearer key that write routes (PUT, DELETE) require; empty = no authentication.
  std::string api_key;
  // Also require the key on read routes (everything but /healthz and /readyz).
  bool auth_reads = false;
  // HNSW beam width of recommendation and similar-item queries; 0 = the one saved with the
  // model's index. Lower is faster and recalls less (BENCHMARKS.md has the trade-off).
  int ef_search = 0;
  // Feedback event types and their weights (POST /v1/feedback).
  FeedbackOptions feedback;
  // Threads folding users in after their feedback is acknowledged (serving/fold_queue.h).
  int fold_threads = 1;
};

// Thread safety: Handle is const and may be called from any number of threads at once.
class Api {
 public:
  // Every pointer must outlive the Api. `connections` (may be null) reports the server's open
  // connections for /metrics. `events` (may be null: the feedback routes then answer 404) is
  // the store that POST /v1/feedback writes to. `folder` folds users in and holds them (null:
  // the Api keeps its own, over `events` with options.feedback and options.fold_threads).
  // `retrainer` (may be null: the admin routes then answer 404) retrains and swaps versions.
  Api(LiveModel* live, Metrics* metrics, ApiOptions options,
      std::function<int64_t()> connections = nullptr, EventStore* events = nullptr,
      FeedbackFolder* folder = nullptr, Retrainer* retrainer = nullptr);

  // Answers one request. Never throws; a malformed request gets a 4xx JSON error.
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse Route(const HttpRequest& request) const;
  // POST /v1/feedback, GET /v1/users/{user}/feedback, DELETE /v1/users/{user}.
  HttpResponse PostFeedback(const HttpRequest& request) const;
  HttpResponse UserFeedback(const std::string& user, std::string_view raw_query) const;
  HttpResponse EraseUser(const std::string& user) const;
  // /v1/admin/{retrain,rollback}.
  HttpResponse Admin(const HttpRequest& request, const std::string& action,
                     std::string_view raw_query) const;

  LiveModel* live_;
  Metrics* metrics_;
  ApiOptions options_;
  std::function<int64_t()> connections_;
  EventStore* events_;
  std::unique_ptr<FeedbackFolder> own_folder_;
  FeedbackFolder* folder_;
  Retrainer* retrainer_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_API_H_
