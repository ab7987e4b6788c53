// `recloop serve`: recommendations over HTTP from a models directory's current version.
#include "tools/serve_command.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <utility>

#include "serving/api.h"
#include "serving/api_keys.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

// The server's flags: the model, HTTP limits and timeouts, request defaults, the event store.
void AddServerFlags(CLI::App* sub, ServeCommand* cmd) {
  ServeOptions& so = cmd->serve;
  // Before --models is required: CLI11 runs flag callbacks before it checks requirements, and
  // CLI::Success exits 0 (like --help). tests/api/openapi_test.py compares this with the spec.
  sub->add_flag_callback(
      "--list-routes",
      [] {
        for (const ApiRoute& r : ApiRoutes()) {
          std::printf("%s %s %s\n", r.method.c_str(), r.pattern.c_str(), r.scope.c_str());
        }
        throw CLI::Success();
      },
      "Print the HTTP routes (METHOD PATTERN SCOPE, one a line; docs/openapi.yaml) and exit");
  sub->add_option("--models", so.model.models_dir,
                  "Models directory written by `recloop train --out`")
      ->required();
  sub->add_option("--catalog", so.model.catalog_path,
                  "Item catalogue: an SQLite file (default MODELS/catalog.db), or a "
                  "postgresql:// URL shared by replicas");
  sub->add_option("--host", so.http.host, "Address to listen on")->capture_default_str();
  sub->add_option("--port", so.http.port, "TCP port (0: any free port)")->capture_default_str();
  sub->add_option("--io-threads", so.http.threads, "I/O threads (0: one per core)")
      ->capture_default_str();
  sub->add_option("--blocking-threads", so.http.blocking_threads,
                  "Threads for requests that wait for a commit (writes: POST, PUT, DELETE), off "
                  "the I/O threads so that commits of many connections group (0: on the I/O "
                  "thread)")
      ->capture_default_str();
  sub->add_option("--max-header-bytes", so.http.max_header_bytes,
                  "Largest request header (larger: 431)")
      ->capture_default_str();
  sub->add_option("--max-body-bytes", so.http.max_body_bytes, "Largest request body (larger: 413)")
      ->capture_default_str();
  sub->add_option("--max-connections", so.http.max_connections,
                  "Open connections at most (more: 503)")
      ->capture_default_str();
  sub->add_option("--idle-timeout-ms", cmd->idle_timeout_ms,
                  "Close a keep-alive connection idle this long")
      ->capture_default_str();
  sub->add_option("--read-timeout-ms", cmd->read_timeout_ms,
                  "A started request must arrive whole within this (slow clients are cut)")
      ->capture_default_str();
  sub->add_option("--drain-timeout-ms", cmd->drain_timeout_ms,
                  "On SIGTERM/SIGINT, time for requests in flight to finish")
      ->capture_default_str();
  sub->add_option("--rate-limit", so.http.max_requests_per_second_per_connection,
                  "Requests per second per connection (more: 429 with Retry-After); 0 = unlimited")
      ->capture_default_str();
  sub->add_option("--default-n", so.api.default_n, "Results when a request gives no n")
      ->capture_default_str();
  sub->add_option("--max-n", so.api.max_n, "Largest n a request may ask for")
      ->capture_default_str();
  // HTTPS without a proxy; both or neither (CLI11 names the missing one).
  CLI::Option* cert =
      sub->add_option("--tls-cert", so.http.tls_cert_file,
                      "Serve HTTPS with this PEM certificate (chain, leaf first); needs "
                      "--tls-key. Usually a proxy terminates TLS instead (README, Security)");
  CLI::Option* key = sub->add_option("--tls-key", so.http.tls_key_file,
                                     "PEM private key (unencrypted) of --tls-cert");
  cert->needs(key);
  key->needs(cert);
  sub->add_option("--events", so.events_path,
                  "Event store of POST /v1/feedback: an SQLite file (created when missing), or "
                  "a postgresql:// URL shared by replicas (docs/scaling.md); without it the "
                  "feedback routes answer 404");
}

// The background retrainer's flags (serving/retrainer.h), then the query, key and log flags.
void AddRetrainAndAccessFlags(CLI::App* sub, ServeCommand* cmd) {
  ServeOptions& so = cmd->serve;
  RetrainerOptions& ro = so.retrain;
  sub->add_option("--retrain-events", ro.every_events,
                  "Retrain in the background after this many new events (0: not by count)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--retrain-minutes", ro.every_minutes,
                  "Or this many minutes after the last retrain, if there are new events "
                  "(0: not by time)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--retrain-iterations", ro.iterations,
                  "ALS iterations of a retrain (warm-started from the live model)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  sub->add_option("--retrain-threads", ro.threads,
                  "Threads of a retrain (it runs at nice 19 beside serving)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  sub->add_option("--retrain-regularization", ro.regularization,
                  "Regularisation of retrained models (negative: the live model's)")
      ->capture_default_str();
  sub->add_option("--holdout-fraction", ro.gate.holdout_fraction,
                  "Newest share of the new events held out to gate a retrained model")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  sub->add_option("--gate-tolerance", ro.gate.tolerance,
                  "Promote a retrained model unless it is worse than the live one on the "
                  "holdout by more than this fraction (RMSE, or NDCG@10 for implicit)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--new-item-min-events", ro.new_item_min_events,
                  "A new item with this many events from known customers is folded in and "
                  "indexed before the next retrain (0: wait for the retrain)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--keep-versions", ro.keep_versions,
                  "Model versions kept in the models directory (older ones are removed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  sub->add_option("--ef-search", so.api.ef_search,
                  "HNSW beam width of queries (lower: faster, recalls less); 0 = the one "
                  "saved with the index")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  sub->add_option("--cache-candidates", so.api.ranked_cache.candidates,
                  "Ranked candidates cached per user (exact under feedback, catalogue changes "
                  "and swaps; a request needing more searches); 0 = no cache")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  sub->add_option("--cache-users", so.api.ranked_cache.max_users,
                  "Users whose ranking is cached at most (least recently used evicted; about "
                  "12 bytes a candidate + 150 a user)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000'000}));
  sub->add_flag("--no-cache-warm{false}", so.warm_cache,
                "Do not rank the most active users into the cache in the background after each "
                "model goes live (first requests then search)");
  sub->add_option("--api-key-file", cmd->api_key_file,
                  "File whose first line is the API key (every scope) that write routes "
                  "require (else $RECLOOP_API_KEY)");
  sub->add_flag("--create-api-key-file", cmd->create_api_key_file,
                "Create --api-key-file (mode 0600, a new random key) if it does not exist")
      ->needs("--api-key-file");
  sub->add_option("--key-file", so.key_file,
                  "Scoped keys, one a line: NAME SCOPES SHA256HEX (`recloop keys hash`); "
                  "re-read on SIGHUP");
  sub->add_flag("--insecure-no-auth", so.insecure_no_auth,
                "Serve a non-loopback --host without any key (every write open to the network)");
  sub->add_flag("--auth-reads", so.api.auth_reads,
                "Require a key with the read scope on read routes too (not /healthz, /readyz)");
  sub->add_option("--cors-origin", so.api.cors.allowed_origins,
                  "Origin (https://host[:port]) whose pages may call the API from browsers; "
                  "repeatable. Default none: no CORS headers. '*' allows every site")
      ->take_all()
      ->expected(1);
  sub->add_option("--cors-max-age", so.api.cors.max_age_seconds,
                  "Seconds a browser may cache a CORS preflight's approval")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  sub->add_option("--access-log-every", so.access_log_every,
                  "Log every N-th request to stderr (0: no access log)")
      ->capture_default_str();
}

// Rate limits and request caps (serving/api.h ApiOptions).
void AddLimitFlags(CLI::App* sub, ServeCommand* cmd) {
  ApiOptions& api = cmd->serve.api;
  sub->add_option("--rate-limit-per-key", api.key_rate_limit.rate,
                  "Requests per second per API key (more: 429 with Retry-After); 0 = unlimited")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--rate-limit-per-key-burst", api.key_rate_limit.burst,
                  "Requests a key may send at once after being idle; 0 = the rate")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--rate-limit-per-address", api.address_rate_limit.rate,
                  "Requests per second per client address, IPv6 by /64 (more: 429 with "
                  "Retry-After); 0 = unlimited. Loopback peers are exempt unless "
                  "--rate-limit-loopback")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--rate-limit-per-address-burst", api.address_rate_limit.burst,
                  "Requests an address may send at once after being idle; 0 = the rate")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--rate-limit-loopback", api.rate_limit_loopback,
                "Count loopback peers (this machine) against --rate-limit-per-address too");
  sub->add_option("--trusted-proxy", api.trusted_proxies,
                  "IP address of a reverse proxy whose X-Forwarded-For is believed: its "
                  "requests are limited by the header's last hop (repeatable; default none)");
  sub->add_option("--max-feedback-events", api.feedback.max_events_per_request,
                  "Events one POST /v1/feedback may carry (more: 400 too_many_events)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  sub->add_option("--write-nice", cmd->serve.write_nice,
                  "Nice value (0-19) of the threads that take writes (requests waiting for a "
                  "commit, the SQLite writer, the fold threads): reads are answered first under "
                  "CPU contention")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  sub->add_option("--fold-threads", api.fold.threads,
                  "Threads folding users in after their feedback is acknowledged (0: one per core, "
                  "at most 8)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  sub->add_flag("!--no-impressions", api.impressions.record,
                "Keep no impressions: nothing is stored or attributed (lists still carry a "
                "recommendation_id)");
  sub->add_option("--experiment", cmd->serve.experiment_path,
                  "An A/B test of serving: a TOML file of variants, shares and their serving "
                  "parameters (docs/serving.md), re-read on SIGHUP")
      ->check(CLI::ExistingFile);
  sub->add_option("--impression-sample-rate", api.impressions.sample_rate,
                  "Fraction of served lists (impressions) stored in the event store; the rest "
                  "are counted on /metrics as sampled out (attribution sees them all)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option_function<int>(
         "--attribution-window-minutes",
         [&api](int minutes) {
           api.impressions.attribution_window = std::chrono::minutes(minutes);
         },
         "How long after a list was shown a click, cart or purchase without a recommendation_id "
         "is credited to it (default 1440: a day)")
      ->check(CLI::Range(0, 525'600));
  sub->add_option("--max-fold-backlog", api.backpressure.max_fold_backlog,
                  "Users waiting to be folded in at which POST /v1/feedback is refused (503 "
                  "overloaded with Retry-After, nothing stored); 0 = no bound")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--max-write-queue", api.backpressure.max_write_queue,
                  "Writes waiting for the event store's writer at which POST /v1/feedback is "
                  "refused (503 overloaded with Retry-After, nothing stored); 0 = no bound")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--backpressure-retry-after", api.backpressure.retry_after_seconds,
                  "Retry-After (whole seconds) of a feedback request refused as overloaded")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  sub->add_option("--max-exclude", api.max_exclude,
                  "IDs in a list route's ?exclude= (more: 400 too_many_exclusions)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  sub->add_option("--max-categories", api.max_categories,
                  "?category= filters of a list route (more: 400 too_many_categories)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  sub->add_option("--max-json-depth", api.json.max_depth,
                  "Deepest nesting of a JSON body (deeper: 400 json_too_deep)")
      ->capture_default_str()
      ->check(CLI::Range(1, 63));
  sub->add_option("--max-json-elements", api.json.max_elements,
                  "Elements of any nested JSON array or object of a body (more: 400 "
                  "json_too_many_elements)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000'000));
}

}  // namespace

int RunServeCommand(ServeCommand cmd) {
  ServeOptions& o = cmd.serve;
  o.http.idle_timeout = std::chrono::milliseconds(cmd.idle_timeout_ms);
  o.http.read_timeout = std::chrono::milliseconds(cmd.read_timeout_ms);
  o.http.drain_timeout = std::chrono::milliseconds(cmd.drain_timeout_ms);
  // The key never comes from the command line (it would show in ps and shell history).
  if (cmd.create_api_key_file) {
    absl::StatusOr<bool> created = CreateApiKeyFile(cmd.api_key_file);
    if (!created.ok()) return Fail(created.status());
    // The path only: the key stays in the file.
    if (*created) {
      std::fprintf(stderr,
                   "recloop serve: created a new API key in %s (mode 0600; read it there)\n",
                   cmd.api_key_file.c_str());
    }
  }
  if (!cmd.api_key_file.empty()) {
    std::ifstream in(cmd.api_key_file);
    if (!in) return Fail(absl::NotFoundError("cannot read --api-key-file " + cmd.api_key_file));
    std::getline(in, o.api.api_key);
    if (o.api.api_key.empty()) {
      return Fail(absl::InvalidArgumentError("--api-key-file " + cmd.api_key_file +
                                             " has an empty first line"));
    }
  } else if (const char* env = std::getenv("RECLOOP_API_KEY"); env != nullptr && *env != 0) {
    o.api.api_key = env;
  }
  if (o.api.default_n < 1 || o.api.max_n < o.api.default_n) {
    return Fail(absl::InvalidArgumentError("need 1 <= --default-n <= --max-n"));
  }
  if (absl::Status s = RunServe(o); !s.ok()) return Fail(s);
  return 0;
}

Subcommand AddServeCommand(CLI::App* app) {
  auto cmd = std::make_shared<ServeCommand>();
  CLI::App* sub = app->add_subcommand(
      "serve", "Serve recommendations over HTTP from a models directory's current version");
  sub->fallthrough();  // --config, a root option (tools/recloop_main.cc): its [serve] table
  AddServerFlags(sub, cmd.get());
  AddRetrainAndAccessFlags(sub, cmd.get());
  AddLimitFlags(sub, cmd.get());
  return {sub, [cmd] { return RunServeCommand(std::move(*cmd)); }};
}

}  // namespace recloop
