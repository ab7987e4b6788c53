// The operational routes: GET /healthz, /readyz, /metrics (Prometheus text), /v1/model (the
// live version's metadata), /openapi.yaml (the API's contract) and the storefront page's
// static files.
#include "absl/strings/str_cat.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"
#include "serving/online_gate.h"
#include "serving/openapi.h"
#include "serving/storefront.h"

namespace recloop {

HttpResponse Healthz(const RouteContext&) { return StatusJson(200, "ok"); }

HttpResponse Readyz(const RouteContext& ctx) {
  const auto snap = ctx.services.live->Get();
  if (snap == nullptr) return NoModel();
  return StatusJson(200, "ready", snap->version());
}

HttpResponse MetricsText(const RouteContext& ctx) {
  const ApiServices& services = ctx.services;
  const auto snap = services.live->Get();
  std::vector<Metrics::Gauge> gauges;
  gauges.push_back({"recloop_model_loaded", "1 if a model is loaded", snap ? 1.0 : 0.0, ""});
  if (snap) {
    gauges.push_back({"recloop_model_info", "The live model version", 1.0,
                      absl::StrCat("version=\"", snap->version(), "\"")});
    gauges.push_back({"recloop_model_users", "Users of the live model",
                      static_cast<double>(snap->model->num_users()), ""});
    gauges.push_back({"recloop_model_items", "Items of the live model",
                      static_cast<double>(snap->model->num_items()), ""});
  }
  if (services.events != nullptr) {
    gauges.push_back({"recloop_feedback_fold_backlog",
                      "Users with acknowledged feedback not yet folded in",
                      static_cast<double>(services.folder->backlog()), ""});
    gauges.push_back({"recloop_event_store_write_queue",
                      "Writes handed to the event store's writer and not yet committed",
                      static_cast<double>(services.events->pending_writes()), ""});
  }
  if (services.follower != nullptr) {
    gauges.push_back({"recloop_replica_followed_seq",
                      "The shared event store's seq this replica has followed the log to",
                      static_cast<double>(services.follower->cursor()), ""});
    gauges.push_back({"recloop_replica_failed_passes",
                      "Passes of the replica follower that failed (the store unreachable)",
                      static_cast<double>(services.follower->failed_passes()), ""});
  }
  if (services.connections) {
    gauges.push_back({"recloop_http_connections", "Open client connections",
                      static_cast<double>(services.connections()), ""});
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = services.metrics->Render(gauges);
  if (services.retrain != nullptr) r.body += services.retrain->RenderMetrics();
  if (services.impressions != nullptr) r.body += services.impressions->MetricsText();
  if (const auto x = services.experiment != nullptr ? services.experiment->Get() : nullptr) {
    r.body += ExperimentMetricsText(*x, LiveComparisons(*x, services.impressions));
  }
  if (services.ranked_cache != nullptr && services.ranked_cache->enabled()) {
    r.body += services.ranked_cache->RenderMetrics();
  }
  return r;
}

HttpResponse ModelInfo(const RouteContext& ctx) {
  const auto snap = ctx.services.live->Get();
  if (snap == nullptr) return NoModel();
  HttpResponse r;
  r.body = snap->metadata_json;  // already JSON (engine/model_format.h)
  return r;
}

// Public, like the page: a client generator or a developer reads it before it has a key.
HttpResponse OpenApiDocument(const RouteContext&) {
  HttpResponse r;
  r.content_type = "application/yaml";
  r.body = std::string(OpenApiYaml());
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

// Public: the page asks for a key itself when the API needs one.
HttpResponse StaticPage(const RouteContext& ctx) {
  const std::optional<StaticFile> file = StorefrontFile(ctx.path);
  if (!file) return JsonError(404, "not_found", "no such route");  // the table matched it
  HttpResponse r;
  r.content_type = std::string(file->content_type);
  r.body = std::string(file->body);
  r.headers.emplace_back("Cache-Control", "no-cache");
  // The page's own script and style files only: no inline code, eval or other hosts, so a
  // catalogue string that slipped into the DOM as HTML could still run nothing; the API is
  // called on this origin only; no framing (clickjacking), no Referer (it carries ?user=).
  // Api::Handle adds X-Content-Type-Options: nosniff to this and every answer.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                         "form-action 'none'; frame-ancestors 'none'");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  return r;
}

}  // namespace recloop
