// Api: the router of the HTTP API. A pure function of the request and the live model (no socket,
// no Beast): the server calls it on its I/O threads, tests and the fuzz target call it directly.
// Its route table (serving/api.cc) gives each route its methods, path pattern, scope and handler
// (serving/handlers/); matching, percent-decoding, ID checks, authentication, 405 with Allow and
// the metrics route name are done once, by the dispatcher. Response bodies: serving/json_codec.h.
//
//   GET    /v1/users/{user}/recommendations?n=&offset=&category=&exclude=&details=
//                                      &predicted_rating= (true: each item's "predicted_rating"
//                                      from the version's rating head, null when the head does
//                                      not know the user or item or there is none; it reflects
//                                      the trained user vector, not feedback folded in since)
//   GET    /v1/items/{item}/similar?n=&offset=&category=&exclude=&details=
//   GET    /v1/popular?n=&offset=&category=&details=
//   GET    /v1/items/{item}            the item's catalogue entry
//   PUT    /v1/items/{item}            {"title":"...","categories":[...],"available":true}
//                                                                                   (catalog)
//   DELETE /v1/items/{item}            mark unavailable                                 (catalog)
//   GET    /v1/users?n=&offset=        a page of the live model's customer IDs, {"users","total"}
//   GET    /v1/model                   version and lineage of the live model
//   POST   /v1/feedback                [{"user","item","type","value"?,"timestamp"?,"id"?}]
//                                                                                   (feedback)
//   GET    /v1/users/{user}/feedback   the user's stored events (?limit=)
//   DELETE /v1/users/{user}            erase the user's events and folded vector           (user)
//   POST   /v1/admin/retrain           retrain now (?wait=true: answer with the outcome)  (admin)
//   GET    /v1/admin/retrain           the last retrain's outcome                          (admin)
//   POST   /v1/admin/rollback          swap the version before the live one back in        (admin)
//   GET    /healthz  /readyz  /metrics
//   GET    /openapi.yaml               this API's OpenAPI 3.1 contract (docs/openapi.yaml)
//   GET    /  (and /storefront.js, /storefront.css)  the storefront page (serving/storefront.h)
//
// Scopes: /healthz, /readyz and the page are public; the other GET routes (read) need a key with
// the read scope only with ApiOptions::auth_reads; feedback, catalog and user routes need a key
// with the feedback, catalog or erase scope whenever keys are configured (serving/api_keys.h);
// admin routes always need one with the admin scope (403 admin_disabled when none is
// configured). Catalogue writes, erasures and admin calls are audited: one line each through
// ApiServices::log (key name, UTC time, route, target path, status).
// Browsers: every answer carries X-Content-Type-Options: nosniff; the page's also a
// Content-Security-Policy ('self' scripts and styles only, no inline code, no framing),
// X-Frame-Options: DENY and Referrer-Policy: no-referrer. CORS is closed unless
// ApiOptions::cors lists origins (serving/cors.h); then OPTIONS on any route, a preflight from
// an allowed origin, is answered 204 with the route's methods without a key, answers to allowed
// origins carry Access-Control-Allow-Origin, and every answer Vary: Origin. Any other OPTIONS
// is a 405 like any method a route does not answer.
// Errors are {"error":{"code":"...","message":"..."}}: 400 bad parameter, 401 missing or unknown
// API key, 403 a key without the route's scope (forbidden) or an admin route without a
// configured API key (admin_disabled), 404 unknown route/item, 405 wrong
// method (with Allow), 409 a retrain already running / nothing to roll back to, 411 write
// without a length, 413/431 (from the server) oversized body/header, 415 non-JSON body, 429
// rate_limited with Retry-After (whole seconds) past the per-address or per-key limit
// (ApiOptions; every route but /healthz and /readyz; the server's per-connection limit answers
// the same), 503 no model loaded yet, 503 overloaded with Retry-After for a POST /v1/feedback
// past a backpressure bound (ApiOptions::backpressure; nothing of it is stored). A request
// over a cap is a 400 whose code names it: too_many_events, too_many_exclusions,
// too_many_categories, id_too_long, json_too_deep, json_too_many_elements.
#ifndef RECLOOP_SERVING_API_H_
#define RECLOOP_SERVING_API_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/logger.h"
#include "data/event_store.h"
#include "serving/api_keys.h"
#include "serving/backpressure.h"
#include "serving/cors.h"
#include "serving/experiment.h"
#include "serving/feedback.h"
#include "serving/feedback_folder.h"
#include "serving/http.h"
#include "serving/impression_log.h"
#include "serving/json_limits.h"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "serving/online_gate.h"
#include "serving/ranked_cache.h"
#include "serving/rate_limiter.h"
#include "serving/replica_follower.h"
#include "serving/retrain_control.h"

namespace recloop {

struct ApiOptions {
  // Results when a request gives no n.
  int default_n = 10;
  // Largest n (and offset + n) a request may ask for; larger is a 400.
  int max_n = 1000;
  // The legacy single bearer key, with every scope, used when ApiServices::keys is null;
  // empty (and no ApiServices::keys) = no authentication (and no admin routes).
  std::string api_key;
  // Also require the key on read routes (every GET but /healthz, /readyz and the page).
  bool auth_reads = false;
  // HNSW beam width of recommendation and similar-item queries; 0 = the one saved with the
  // model's index. Lower is faster and recalls less (BENCHMARKS.md has the trade-off).
  int ef_search = 0;
  // Feedback event types and their weights (POST /v1/feedback).
  FeedbackOptions feedback;
  // The threads folding users in after their feedback is acknowledged (serving/fold_queue.h).
  FoldQueueOptions fold;
  // Bounds on the fold backlog and the event store's write queue past which POST /v1/feedback
  // is refused with 503 overloaded and Retry-After, storing nothing (serving/backpressure.h).
  BackpressureOptions backpressure;
  // Impressions (every list's recommendation_id) and attribution (serving/impression_log.h).
  ImpressionLogOptions impressions;
  // How often the online gate of an experiment with [promotion] checks the counts
  // (serving/online_gate.h); >= 1.
  int online_gate_every_ms = 200;
  // The cache of users' ranked candidates (serving/ranked_cache.h) the Api keeps when
  // ApiServices::ranked_cache is null.
  RankedCacheOptions ranked_cache;

  // Rate limits (serving/rate_limiter.h; beside HttpServerOptions' per-connection one). Every
  // route but /healthz and /readyz counts. Past a limit: 429 rate_limited with Retry-After.
  // Per API key (by the key's name, once the key is known: after authentication, or from a
  // valid Bearer header on a route that needs none). Default off: keys belong to known clients
  // whose volume only the operator knows (a storefront backend may send every shopper's
  // requests under one key).
  RateLimiterOptions key_rate_limit;
  // Per client address, before authentication, so it holds against clients without a key and
  // clients that open new connections. An IPv6 client counts by its /64. The default, 200
  // requests a second with a burst of 400, is far above what the shoppers behind one NAT send
  // (a page view makes a few requests) and far below a flood; a storefront backend calling
  // from one address faster than that must raise it (or set rate 0: off).
  RateLimiterOptions address_rate_limit{.rate = 200, .burst = 400, .max_keys = 100'000};
  // Whether loopback peers (this machine: benchmarks, a local reverse proxy not listed in
  // trusted_proxies) count against the per-address limit. Default false: behind a local
  // proxy every client would share 127.0.0.1's bucket.
  bool rate_limit_loopback = false;
  // Reverse proxies whose X-Forwarded-For is believed (exact IP addresses): for a request whose
  // peer is one of them, the client address is X-Forwarded-For's last hop. Empty (the default):
  // the header is ignored (any client could forge it).
  std::vector<std::string> trusted_proxies;

  // Request caps (each 400 with a code naming it). Shape of JSON bodies, checked before they
  // are parsed (serving/json_limits.h): 400 json_too_deep, json_too_many_elements.
  JsonLimits json;
  // IDs in ?exclude= of a list route, at most (more: 400 too_many_exclusions).
  int max_exclude = 500;
  // ?category= filters of a list route, at most (more: 400 too_many_categories).
  int max_categories = 20;
  // Pages on other origins a browser lets call the API (serving/cors.h). Default: none, and no
  // Access-Control-* header is ever sent.
  CorsOptions cors;
};

// What the Api answers from and writes to.
struct ApiServices {
  // The model and catalogue to answer from. Required.
  LiveModel* live = nullptr;
  // Request and feedback counters, rendered by /metrics. Required.
  Metrics* metrics = nullptr;
  // The server's open connections for /metrics; empty = not reported.
  std::function<int64_t()> connections = nullptr;
  // The store POST /v1/feedback writes to; null = the feedback routes answer 404.
  EventStore* events = nullptr;
  // Folds users in and holds them; null = the Api keeps its own, over `events` with
  // ApiOptions::feedback and ApiOptions::fold.
  FeedbackFolder* folder = nullptr;
  // Retrains and swaps versions (serving/retrainer.h); null = the admin routes answer 404.
  RetrainControl* retrain = nullptr;
  // The keys requests authenticate with (a key file, reloadable); null = the Api keeps its own,
  // holding ApiOptions::api_key if it is set.
  const ApiKeys* keys = nullptr;
  // The audit trail (catalogue writes, erasures, admin calls); null = not logged.
  Logger* log = nullptr;
  // Users' ranked candidates, exact under feedback, catalogue changes and swaps
  // (serving/ranked_cache.h); null = the Api keeps its own, with ApiOptions::ranked_cache.
  RankedCache* ranked_cache = nullptr;
  // What lists were shown and which events they earned (serving/impression_log.h); null = the
  // Api keeps its own, storing into `events` (if any) with ApiOptions::impressions.
  ImpressionLog* impressions = nullptr;
  // The A/B test in force (serving/experiment.h); null = none. With a promotion rule, the Api
  // runs its online gate (serving/online_gate.h), promoting through `retrain`.
  ExperimentHolder* experiment = nullptr;
  // Follows a store shared with other replicas (serving/replica_follower.h): list routes take
  // min_seq, and every answer carries `Recloop-Seq`, the seq this replica has followed to; null
  // = a single server.
  ReplicaFollower* follower = nullptr;
};

// One entry of the route table, as docs/openapi.yaml and `recloop serve --list-routes` name it.
struct ApiRoute {
  std::string method;   // "GET", "POST", "PUT" or "DELETE"
  std::string pattern;  // e.g. "/v1/users/{user}/recommendations"
  std::string scope;    // "public", "read", "feedback", "catalog", "erase" or "admin"
};

// Every route the router knows, in table order. The OpenAPI contract test compares it with the
// spec's operations in both directions. Thread-safe.
std::vector<ApiRoute> ApiRoutes();

// Thread safety: Handle is const and may be called from any number of threads at once.
class Api {
 public:
  // Every pointer of `services` must outlive the Api. The options must be valid (Validate).
  Api(ApiServices services, ApiOptions options);

  // InvalidArgument naming the bad option (a rate limit's, a JSON limit below 1, a cap below 1).
  static absl::Status Validate(const ApiOptions& options);

  // Answers one request. Never throws; a malformed request gets a 4xx JSON error.
  HttpResponse Handle(const HttpRequest& request) const;

 private:
  HttpResponse Dispatch(const HttpRequest& request) const;
  // 429 when the request's client address is over its limit, else nullopt.
  std::optional<HttpResponse> LimitAddress(const HttpRequest& request) const;
  // 429 when the key named `caller` (or, if empty, the request's valid Bearer key) is over its
  // limit, else nullopt.
  std::optional<HttpResponse> LimitKey(const HttpRequest& request, const std::string& caller) const;

  ApiOptions options_;
  std::unique_ptr<RateLimiter> key_limiter_;
  std::unique_ptr<RateLimiter> address_limiter_;
  Cors cors_;  // of options_.cors
  std::unique_ptr<FeedbackFolder> own_folder_;
  std::unique_ptr<ApiKeys> own_keys_;
  std::unique_ptr<RankedCache> own_ranked_cache_;
  std::unique_ptr<ImpressionLog> own_impressions_;
  ApiServices services_;
  std::unique_ptr<OnlineGate> gate_;  // last: it reads the impressions and the experiment  //
                                      // folder, keys: the caller's or own_folder_, own_keys_
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_API_H_
