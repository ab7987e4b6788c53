// The JSON codec of the HTTP API: every JSON response body the server sends is encoded here,
// in one place that fixes each body's key order and replaces invalid UTF-8 (IDs and messages
// come from clients and files) rather than throwing on it. Handlers compute values and call
// these; no other serving file builds response JSON by hand. Bodies are documented at each
// function; serving/api.h lists the routes that send them.
#ifndef RECLOOP_SERVING_JSON_CODEC_H_
#define RECLOOP_SERVING_JSON_CODEC_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/event_store.h"
#include "serving/catalog_store.h"
#include "serving/experiment.h"
#include "serving/http.h"
#include "serving/retrain_control.h"

namespace recloop {

// {"error":{"code":code,"message":message}} with `status`.
HttpResponse JsonError(int status, std::string_view code, std::string_view message);

// {"status":status} with HTTP status `http_status`, followed by "model_version" when given
// (GET /healthz, /readyz, a retrain started without waiting).
HttpResponse StatusJson(int http_status, std::string_view status,
                        std::optional<std::string_view> model_version = std::nullopt);

// {"model_version":version} (POST /v1/admin/rollback).
HttpResponse ModelVersionJson(std::string_view version);

// {"users":[...],"total":total} (GET /v1/users).
HttpResponse UsersJson(std::span<const std::string> users, int64_t total);

// One item of a list response. Title and categories are sent only with ItemList::details,
// predicted_rating only with ItemList::predicted_rating (null when unset).
// Why a personalised item is shown (explain=true): its score is base + others + the sum of the
// listed contributions, one per item of the customer's own history (engine/fold_in.h Explain).
struct ItemExplanation {
  struct Because {
    std::string_view item;
    std::string_view title;  // sent with details only
    float contribution = 0.0f;
    float share = 0.0f;  // contribution / score
  };
  std::string_view vector;  // "trained" or "fold-in": where the user's vector comes from
  float base = 0.0f;        // the item's own bias (0 without biases)
  float others = 0.0f;      // the history items not listed, together
  std::vector<Because> because;
};

struct ListedItem {
  std::string_view item;
  float score = 0.0f;
  std::string_view source;  // "personalized", "popular" or "similar"
  std::string_view title;
  std::vector<std::string> categories;
  std::optional<float> predicted_rating;  // the rating head's prediction, if it has one
  std::optional<ItemExplanation> explanation;  // sent when set
};

// A list response: {subject_key:subject (none if subject_key is empty),"model_version",
// ("recommendation_id",)"items":[{"item","score","source"(,"title","categories")(,"predicted_rating")
// (,"vector","because":[{"item"(,"title"),"contribution","share"}],"because_others",
// "because_base"))}]}
// (recommendations, similar items, popular items).
struct ItemList {
  std::string_view subject_key;  // "user", "item" or empty
  std::string_view subject;
  std::string_view model_version;
  std::string_view recommendation_id;  // sent after model_version when not empty
  std::string_view variant;            // the customer's A/B variant, sent when not empty
  bool details = false;
  bool predicted_rating = false;  // send each item's predicted_rating (a number or null)
  std::vector<ListedItem> items;
};
HttpResponse ItemListJson(const ItemList& list);

// GET /v1/admin/experiments: comparisons[i] is experiment.variants[i]'s.
// {"experiment","salt","control","variants":[{"name","share","ef_search","n","model"(version or
// "live"),"impressions","clicks","carts","purchases","ctr":{"rate","low","high"},
// "conversion":{...}(,"vs_control":{"ctr":{"difference","z","p_value"},"conversion":{...}})}]
// (,"promotion":{"variant","metric","min_impressions","margin","state"("waiting", "promoted",
// "refused" or "failed")(,"difference","lower_bound","control_impressions",
// "variant_impressions","message")})}
HttpResponse ExperimentReportJson(const Experiment& experiment,
                                  std::span<const VariantComparison> comparisons,
                                  const std::optional<PromotionOutcome>& outcome = std::nullopt);

// [[item, source], ...]: a served list as the event store keeps it (serving/impression_log.h),
// written as ItemListJson writes (no DOM).
std::string ItemSourcePairsJson(std::span<const std::pair<std::string, std::string>> items);

// {"item","in_model","title","categories","available"} (GET, PUT, DELETE /v1/items/{item}).
HttpResponse CatalogEntryJson(std::string_view item, bool in_model, const CatalogEntry& entry);

// {"accepted","duplicates","rejected":[{"index","error"}],"seq"?} (POST /v1/feedback); `seq`
// (omitted when 0) is a seq at or after the batch's events: a request with min_seq=seq reads
// them on any replica.
HttpResponse FeedbackAckJson(int64_t accepted, int64_t duplicates,
                             std::span<const std::pair<int, std::string>> rejected,
                             int64_t seq = 0);

// {"user","events":[{"seq","item","type","value"?,"timestamp","id"?}]}, timestamps as ISO 8601
// UTC (GET /v1/users/{user}/feedback).
HttpResponse UserEventsJson(std::string_view user, std::span<const StoredEvent> events);

// {"user","erased_events"} (DELETE /v1/users/{user}).
HttpResponse ErasedUserJson(std::string_view user, int64_t erased_events);

// {"running","last":outcome or null} (GET /v1/admin/retrain).
HttpResponse RetrainStateJson(bool running, const std::optional<RetrainOutcome>& last);

// {"outcome","version"?,"parent_version","message","new_events","seconds","finished",
// "gate"?:{"metric","candidate","live","skipped","passed"}} (POST /v1/admin/retrain?wait=true).
HttpResponse RetrainOutcomeJson(const RetrainOutcome& outcome);

}  // namespace recloop

#endif  // RECLOOP_SERVING_JSON_CODEC_H_
