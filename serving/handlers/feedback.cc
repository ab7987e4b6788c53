// The feedback routes: POST /v1/feedback, GET /v1/users/{user}/feedback (the user's stored
// events) and DELETE /v1/users/{user} (erasure).
#include "serving/feedback.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"

namespace recloop {

HttpResponse PostFeedback(const RouteContext& ctx) {
  const ApiServices& services = ctx.services;
  if (services.events == nullptr) return FeedbackDisabled();
  if (auto refused = RefuseNonJsonBody(ctx.request)) return *std::move(refused);
  // Backpressure (serving/backpressure.h): refused before the body is parsed, and so before
  // anything of it is stored. Events acknowledged earlier are not touched.
  const BackpressureOptions& bounds = ctx.options.backpressure;
  if (const auto overload = CheckBackpressure(bounds, services.folder->backlog(),
                                              services.events->pending_writes())) {
    services.metrics->CountBackpressure(overload->bound);
    return Overloaded(*overload, bounds.retry_after_seconds);
  }
  if (auto refused = RefuseJsonShape(ctx, ctx.options.feedback.max_events_per_request,
                                     "too_many_events", "events")) {
    return *std::move(refused);
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto parsed = ParseFeedbackBody(ctx.request.body, ctx.options.feedback, now);
  if (!parsed.ok()) return BadRequest(parsed.status(), "bad_body");
  AppendResult stored;
  if (!parsed->events.empty()) {
    auto appended = services.events->Append(parsed->events);
    if (!appended.ok()) {
      if (absl::IsInvalidArgument(appended.status())) {
        return BadRequest(appended.status(), "bad_body");
      }
      return StoreUnavailable(appended.status());
    }
    stored = *appended;
  }
  services.metrics->CountFeedback(stored.stored + stored.duplicates,
                                  static_cast<int64_t>(parsed->rejected.size()));
  if (services.retrain != nullptr && stored.stored > 0) {
    services.retrain->NoteEvents(parsed->events);
  }
  // Durable: acknowledged. Each user of the batch is folded in again off this thread; their
  // next recommendation request waits for it if it has not happened yet.
  if (!parsed->events.empty()) {
    std::vector<std::string> users;
    for (const Event& e : parsed->events) users.push_back(e.user);
    std::sort(users.begin(), users.end());
    users.erase(std::unique(users.begin(), users.end()), users.end());
    services.folder->Enqueue(users);
  }
  // Clicks, carts and purchases are credited to the list they answer (serving/impression_log.h;
  // once per list, item and type, so a retried batch counts once).
  if (services.impressions != nullptr) {
    for (size_t i = 0; i < parsed->events.size(); ++i) {
      const Event& e = parsed->events[i];
      services.impressions->Attribute(e.user, e.item, e.type, parsed->recommendation_ids[i]);
    }
  }
  // The seq to read these events with on any replica (min_seq): the batch's last, or for a
  // batch of duplicates only, the store's high-water mark (at or after theirs).
  int64_t seq = stored.last_seq;
  if (seq == 0 && stored.duplicates > 0) {
    if (auto last = services.events->LastSeq(); last.ok()) seq = *last;
  }
  return FeedbackAckJson(stored.stored + stored.duplicates, stored.duplicates, parsed->rejected,
                         seq);
}

HttpResponse UserFeedback(const RouteContext& ctx) {
  if (ctx.services.events == nullptr) return FeedbackDisabled();
  int64_t limit = 1000;
  for (const auto& [key, value] : ctx.query) {
    if (key != "limit") {
      return JsonError(400, "unknown_parameter", absl::StrCat("unknown parameter '", key, "'"));
    }
    if (!absl::SimpleAtoi(value, &limit) || limit < 1 || limit > 100'000) {
      return JsonError(400, "bad_parameter", "limit must be an integer in [1, 100000]");
    }
  }
  const std::string& user = ctx.param("user");
  auto history = ctx.services.events->UserEvents(user, limit);
  if (!history.ok()) return StoreUnavailable(history.status());
  return UserEventsJson(user, *history);
}

HttpResponse EraseUser(const RouteContext& ctx) {
  if (ctx.services.events == nullptr) return FeedbackDisabled();
  const std::string& user = ctx.param("user");
  // The folder deletes the events and publishes the erasure, ordered against folds in flight.
  auto erased = ctx.services.folder->EraseUser(user);
  if (!erased.ok()) return StoreUnavailable(erased.status());
  return ErasedUserJson(user, *erased);
}

}  // namespace recloop
