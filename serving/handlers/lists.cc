// The list routes: GET /v1/users/{user}/recommendations, /v1/items/{item}/similar,
// /v1/popular, and the page of the live model's users, GET /v1/users.
#include <algorithm>
#include <memory>
#include <numeric>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/status_macros.h"
#include "serving/handlers/handlers.h"
#include "serving/json_codec.h"
#include "serving/ranked_cache.h"

namespace recloop {
namespace {

constexpr int kMaxOffset = 100'000;
// How long a list request with min_seq waits for this replica to follow the log that far.
constexpr int kMinSeqWaitMs = 2000;

// The parameters of a list route. Errors: NotFound for a key the route does not take,
// InvalidArgument for a bad value.
struct ListParams {
  int n = 0;
  bool n_given = false;  // the request named n (else the server's default, or its variant's)
  int offset = 0;
  std::vector<std::string> categories;
  std::vector<std::string> exclude;
  bool details = false;  // each item's title and categories from the catalogue
  bool predicted_rating = false;  // each item's rating from the version's rating head
  bool explain = false;           // why each personalised item is shown (ItemExplanation)
  // Read-your-writes across replicas: wait until this replica has followed the shared event
  // store up to this seq (the `seq` a write answered; serving/replica_follower.h). 0 = no wait.
  int64_t min_seq = 0;
};

// Which optional keys a list route takes beside n, offset, category and details.
struct ListKeys {
  bool exclude = false;
  bool predicted_rating = false;
  bool explain = false;
};

// History items named in an explanation, at most; the rest are summed as "because_others".
constexpr size_t kBecauseItems = 3;

absl::Status ParseBoundedInt(const std::string& key, const std::string& value, int lo, int hi,
                             int* out) {
  int v = 0;
  if (!absl::SimpleAtoi(value, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", key, "' must be an integer in [",
                                                   lo, ", ", hi, "], got '", value, "'"));
  }
  *out = v;
  return absl::OkStatus();
}

// A boolean parameter: "true" or "false", once.
absl::Status ParseBool(const std::string& key, const std::string& value, bool* seen, bool* out) {
  if (*seen) return absl::InvalidArgumentError(absl::StrCat("parameter '", key, "' given twice"));
  *seen = true;
  if (value != "true" && value != "false") {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter '", key, "' must be true or false, got '", value, "'"));
  }
  *out = value == "true";
  return absl::OkStatus();
}

absl::StatusOr<ListParams> ParseListParams(const QueryParams& query, ListKeys keys,
                                           const ApiOptions& options) {
  ListParams p;
  p.n = options.default_n;
  bool seen_n = false, seen_offset = false, seen_details = false, seen_predicted = false,
       seen_explain = false, seen_min_seq = false;
  for (const auto& [key, value] : query) {
    if (key == "n") {
      if (seen_n) return absl::InvalidArgumentError("parameter 'n' given twice");
      seen_n = p.n_given = true;
      if (auto s = ParseBoundedInt(key, value, 1, options.max_n, &p.n); !s.ok()) return s;
    } else if (key == "offset") {
      if (seen_offset) return absl::InvalidArgumentError("parameter 'offset' given twice");
      seen_offset = true;
      if (auto s = ParseBoundedInt(key, value, 0, kMaxOffset, &p.offset); !s.ok()) return s;
    } else if (key == "category") {
      if (value.empty()) return absl::InvalidArgumentError("parameter 'category' is empty");
      p.categories.push_back(value);
    } else if (key == "details") {
      if (auto s = ParseBool(key, value, &seen_details, &p.details); !s.ok()) return s;
    } else if (key == "predicted_rating" && keys.predicted_rating) {
      if (auto s = ParseBool(key, value, &seen_predicted, &p.predicted_rating); !s.ok()) return s;
    } else if (key == "explain" && keys.explain) {
      if (auto s = ParseBool(key, value, &seen_explain, &p.explain); !s.ok()) return s;
    } else if (key == "min_seq") {
      if (seen_min_seq) return absl::InvalidArgumentError("parameter 'min_seq' given twice");
      seen_min_seq = true;
      if (!absl::SimpleAtoi(value, &p.min_seq) || p.min_seq < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter 'min_seq' must be a non-negative integer, got '", value, "'"));
      }
    } else if (key == "exclude" && keys.exclude) {
      for (absl::string_view id : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        p.exclude.emplace_back(id);
      }
    } else {
      // NotFound: the key is not one of this route's parameters (400 unknown_parameter).
      return absl::NotFoundError(absl::StrCat("unknown query parameter '", key, "'"));
    }
  }
  return p;
}

// 400 for a list query over a request cap: too_many_exclusions, too_many_categories, or
// id_too_long for an excluded ID or a category longer than kMaxIdBytes.
std::optional<HttpResponse> CheckListCaps(const ListParams& p, const ApiOptions& options) {
  if (p.exclude.size() > static_cast<size_t>(options.max_exclude)) {
    return JsonError(400, "too_many_exclusions",
                     absl::StrCat("at most ", options.max_exclude,
                                  " IDs in 'exclude' (the exclusion cap), got ", p.exclude.size()));
  }
  if (p.categories.size() > static_cast<size_t>(options.max_categories)) {
    return JsonError(
        400, "too_many_categories",
        absl::StrCat("at most ", options.max_categories,
                     " 'category' filters (the category cap), got ", p.categories.size()));
  }
  for (const std::vector<std::string>* ids : {&p.exclude, &p.categories}) {
    for (const std::string& id : *ids) {
      if (id.size() > kMaxIdBytes) {
        return JsonError(400, "id_too_long",
                         absl::StrCat("an ID in '", ids == &p.exclude ? "exclude" : "category",
                                      "' is longer than the ID cap, ", kMaxIdBytes, " bytes"));
      }
    }
  }
  return std::nullopt;
}

// 400 unknown_parameter or bad_parameter for a query ParseListParams refused.
HttpResponse BadListParams(const absl::Status& s) {
  return BadRequest(s, absl::IsNotFound(s) ? "unknown_parameter" : "bad_parameter");
}

// Filters of a list request in the snapshot's indices. Unknown category names match no item;
// unknown excluded items are ignored.
RecommendOptions ToRecommendOptions(const ListParams& p, const ModelSnapshot& s, int ef_search) {
  RecommendOptions o;
  o.ef_search = ef_search;
  o.n = p.n;
  o.offset = p.offset;
  for (const auto& name : p.categories) {
    o.categories.push_back(s.categories->Find(name).value_or(-1));
  }
  for (const auto& id : p.exclude) {
    if (const auto i = s.model->items.Find(id)) o.exclude.push_back(*i);
  }
  return o;
}

// The rating head's prediction of `user` for `item` (external IDs), or nullopt when the
// snapshot has no head or the head does not know the user or the item. Clamped to the range of
// the head's training ratings (FactorModel::PredictRating).
std::optional<float> PredictedRating(const ModelSnapshot& s, std::optional<int32_t> head_user,
                                     std::string_view item) {
  if (s.rating_head == nullptr || !head_user) return std::nullopt;
  const auto head_item = s.rating_head->items.Find(item);
  if (!head_item) return std::nullopt;
  return s.rating_head->PredictRating(*head_user, *head_item);
}

// Explanations of the personalised items of `recs` for `user` (explain=true), aligned with
// recs (nullopt for an item served otherwise). The history is the one the served vector was
// solved from: the user's fold-in entry, else their row of the trained model. A trained vector
// from the CG solver (the default) approximates that solve: its terms then add up to the
// exact solve's score, within CG's tolerance of the served one. None for a user with neither,
// a model without a fold-in (popularity), or one whose scores do not split (BPMF).
absl::StatusOr<std::vector<std::optional<ItemExplanation>>> Explain(
    const ModelSnapshot& s, std::string_view user, const FoldedUserEntry* folded,
    const std::vector<Recommendation>& recs) {
  std::vector<std::optional<ItemExplanation>> out(recs.size());
  if (s.fold_in == nullptr || s.model->params.algorithm == Algorithm::kBpmf) return out;
  std::span<const int32_t> items;
  std::span<const float> values;
  std::string_view vector;
  if (folded != nullptr && !folded->factors.empty()) {
    items = folded->history_items;
    values = folded->history_values;
    vector = "fold-in";
  } else if (const auto u = s.model->users.Find(user);
             folded == nullptr && u && *u < s.model->seen.rows()) {
    items = s.model->seen.RowIndices(*u);
    values = s.model->seen.RowValues(*u);
    vector = "trained";
  } else {
    return out;
  }
  std::vector<int32_t> targets;
  std::vector<size_t> at;
  for (size_t r = 0; r < recs.size(); ++r) {
    if (recs[r].source != RecommendationSource::kPersonalized) continue;
    targets.push_back(recs[r].item);
    at.push_back(r);
  }
  ASSIGN_OR_RETURN(const auto explained, s.fold_in->Explain(items, values, targets));
  std::vector<size_t> order;
  for (size_t t = 0; t < targets.size(); ++t) {
    const auto& terms = explained[t].terms;
    order.resize(terms.size());
    std::iota(order.begin(), order.end(), size_t{0});
    const size_t named = std::min(kBecauseItems, terms.size());
    std::partial_sort(order.begin(), order.begin() + named, order.end(),
                      [&](size_t a, size_t b) { return terms[a] > terms[b]; });
    ItemExplanation e;
    e.vector = vector;
    e.base = explained[t].base;
    const float score = recs[at[t]].score;
    for (size_t j = 0; j < terms.size(); ++j) {
      if (j < named) {
        ItemExplanation::Because b;
        b.item = s.model->items.External(items[order[j]]);
        b.title = s.Title(items[order[j]]);
        b.contribution = terms[order[j]];
        b.share = score != 0.0f ? b.contribution / score : 0.0f;
        e.because.push_back(b);
      } else {
        e.others += terms[order[j]];
      }
    }
    out[at[t]] = std::move(e);
  }
  return out;
}

// The list response of `recs`; with details, each item's title and categories come from the
// snapshot's catalogue (no lock: the snapshot is immutable); with predicted_rating, each item's
// rating for `subject` (a user) from the snapshot's rating head; with `explanations` (aligned
// with recs), why each is shown.
//
// Every list gets a fresh recommendation_id, and the impression (who was shown what, where, by
// which version) goes to the impression log for attribution and storage.
HttpResponse ListResponse(const RouteContext& ctx, std::string_view route, const ModelSnapshot& s,
                          std::string_view subject_key, std::string_view subject,
                          const ListParams& p, const std::vector<Recommendation>& recs,
                          std::string_view variant = "",
                          std::vector<std::optional<ItemExplanation>> explanations = {}) {
  const std::string id = ImpressionLog::NewId();
  ItemList list{subject_key, subject, s.version(), id, variant, p.details, p.predicted_rating, {}};
  std::optional<int32_t> head_user;
  if (p.predicted_rating && s.rating_head != nullptr) {
    head_user = s.rating_head->users.Find(subject);
  }
  list.items.reserve(recs.size());
  for (const Recommendation& r : recs) {
    ListedItem item{s.model->items.External(r.item), r.score, ToString(r.source), {}, {}, {}, {}};
    if (p.details) {
      item.title = s.Title(r.item);
      item.categories = s.CategoryNames(r.item);
    }
    if (p.predicted_rating) item.predicted_rating = PredictedRating(s, head_user, item.item);
    if (list.items.size() < explanations.size()) {
      item.explanation = std::move(explanations[list.items.size()]);
    }
    list.items.push_back(std::move(item));
  }
  HttpResponse response = ItemListJson(list);
  if (ctx.services.impressions != nullptr) {
    ServedList served;
    if (subject_key == "user") served.user = std::string(subject);
    served.route = std::string(route);
    served.model_version = std::string(s.version());
    served.variant = std::string(variant);
    served.items.reserve(list.items.size());
    for (const ListedItem& item : list.items) {
      served.items.emplace_back(std::string(item.item), std::string(item.source));
    }
    ctx.services.impressions->Record(id, std::move(served));
  }
  return response;
}

// What every list route does first: its parameters, the live snapshot and the query's options
// against it; or the error response when the parameters are bad or no model is loaded.
struct ListRequest {
  ListParams params;
  std::shared_ptr<const ModelSnapshot> snap;
  RecommendOptions options;
  std::optional<HttpResponse> error;
};

ListRequest StartList(const RouteContext& ctx, ListKeys keys) {
  ListRequest out;
  auto params = ParseListParams(ctx.query, keys, ctx.options);
  if (!params.ok()) {
    out.error = BadListParams(params.status());
    return out;
  }
  out.params = *std::move(params);
  if ((out.error = CheckListCaps(out.params, ctx.options))) return out;
  // Read-your-writes across replicas: this replica first follows the log up to min_seq (a
  // single server has folded its own writes already: nothing to wait for).
  if (ReplicaFollower* follower = ctx.services.follower;
      follower != nullptr && out.params.min_seq > follower->cursor() &&
      !follower->WaitFor(out.params.min_seq, kMinSeqWaitMs)) {
    HttpResponse r = JsonError(
        503, "behind_min_seq",
        absl::StrCat("this replica has followed the event store up to seq ", follower->cursor(),
                     ", not yet ", out.params.min_seq, "; retry after 1 s"));
    r.headers.emplace_back("Retry-After", "1");
    out.error = std::move(r);
    return out;
  }
  // Read-your-writes: the user's acknowledged feedback is folded in before answering.
  const std::string& user = ctx.param("user");
  if (!user.empty()) ctx.services.folder->EnsureFresh(user);
  out.snap = ctx.services.live->Get();
  if (out.snap == nullptr) {
    out.error = NoModel();
    return out;
  }
  out.options = ToRecommendOptions(out.params, *out.snap, ctx.options.ef_search);
  return out;
}

}  // namespace

HttpResponse Recommendations(const RouteContext& ctx) {
  ListRequest req = StartList(ctx, {.exclude = true, .predicted_rating = true, .explain = true});
  if (req.error) return *std::move(req.error);
  const std::string& user = ctx.param("user");
  // An A/B test: the customer's variant, served with its own parameters. A variant with its
  // own beam is searched, not answered from the ranked cache (ranked with the server's beam).
  // A variant with its own model version ranks with that version's snapshot, and the customer's
  // feedback since that version's training is folded in against it on each request.
  std::shared_ptr<const Experiment> experiment;
  const ExperimentVariant* variant = nullptr;
  RankedCache* cache = ctx.services.ranked_cache;
  std::shared_ptr<const FoldedUserEntry> folded;
  if (ctx.services.experiment != nullptr && (experiment = ctx.services.experiment->Serving())) {
    variant = experiment->Assign(user);
    if (variant != nullptr && variant->ef_search > 0 &&
        variant->ef_search != req.options.ef_search) {
      req.options.ef_search = variant->ef_search;
      cache = nullptr;
    }
    if (variant != nullptr && variant->n > 0 && !req.params.n_given) {
      req.options.n = std::min(variant->n, ctx.options.max_n);
    }
    if (variant != nullptr && variant->snapshot != nullptr) {
      req.snap = variant->snapshot;
      const int n = req.options.n;
      req.options = ToRecommendOptions(req.params, *req.snap,
                                       req.options.ef_search);  // the version's own item IDs
      req.options.n = n;
      cache = nullptr;
      auto fresh = ctx.services.folder->FoldAgainst(*req.snap, user);
      if (!fresh.ok()) return Internal(fresh.status());
      folded = *std::move(fresh);
    }
  }
  const ModelSnapshot& snap = *req.snap;
  if (variant == nullptr || variant->snapshot == nullptr) {
    folded = ctx.services.folder->overlay().Find(user, snap.version());
  }
  auto recs = RankUser(cache, snap, user, folded.get(), req.options);
  if (!recs.ok()) return Internal(recs.status());
  std::vector<std::optional<ItemExplanation>> explanations;
  if (req.params.explain) {
    auto e = Explain(snap, user, folded.get(), *recs);
    if (!e.ok()) return Internal(e.status());
    explanations = *std::move(e);
  }
  return ListResponse(ctx, "recommendations", snap, "user", user, req.params, *recs,
                      variant != nullptr ? std::string_view(variant->name) : "",
                      std::move(explanations));
}

HttpResponse SimilarItems(const RouteContext& ctx) {
  ListRequest req = StartList(ctx, {.exclude = true});
  if (req.error) return *std::move(req.error);
  const ModelSnapshot& snap = *req.snap;
  const std::string& id = ctx.param("item");
  const auto item = snap.model->items.Find(id);
  if (!item) {
    return JsonError(404, "unknown_item", absl::StrCat("item '", id, "' is not in the model"));
  }
  if (!snap.model->has_factors()) {
    return JsonError(404, "no_embeddings",
                     "the live model has no item embeddings (popularity model)");
  }
  auto recs = snap.recommender->Similar(*item, req.options);
  if (!recs.ok()) return Internal(recs.status());
  return ListResponse(ctx, "similar", snap, "item", id, req.params, *recs);
}

HttpResponse PopularItems(const RouteContext& ctx) {
  ListRequest req = StartList(ctx, {});
  if (req.error) return *std::move(req.error);
  auto recs = req.snap->recommender->Recommend(-1, req.options);
  if (!recs.ok()) return Internal(recs.status());
  return ListResponse(ctx, "popular", *req.snap, "", "", req.params, *recs);
}

// A page of the live model's customer IDs (for pickers such as the storefront page's).
HttpResponse UserPage(const RouteContext& ctx) {
  auto params = ParseListParams(ctx.query, {}, ctx.options);
  if (!params.ok()) return BadListParams(params.status());
  if (!params->categories.empty() || params->details) {
    return JsonError(400, "unknown_parameter", "/v1/users takes n and offset only");
  }
  const auto snap = ctx.services.live->Get();
  if (snap == nullptr) return NoModel();
  const int64_t total = snap->model->num_users();
  std::vector<std::string> users;
  for (int64_t u = params->offset; u < std::min<int64_t>(total, params->offset + params->n); ++u) {
    users.push_back(snap->model->users.External(static_cast<int32_t>(u)));
  }
  return UsersJson(users, total);
}

}  // namespace recloop
