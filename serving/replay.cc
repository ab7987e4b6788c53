#include "serving/replay.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "data/event_interactions.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "serving/ranked_cache.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

// One customer's part of the replay.
struct Customer {
  std::string user;
  std::vector<StoredEvent> events;  // in log order
  std::vector<int32_t> targets;     // model items eval counts as relevant, sorted
};

struct CustomerResult {
  bool known = false;
  int64_t targets = 0, hits = 0, lists = 0, popular_lists = 0, folds = 0;
  double dcg = 0.0;
  absl::Status status;
};

double Idcg(int64_t relevant, int k) {
  double idcg = 0.0;
  for (int64_t r = 1; r <= std::min<int64_t>(relevant, k); ++r) idcg += 1.0 / std::log2(r + 1.0);
  return idcg;
}

// Replays one customer's events: the list before each first event on a target, ranked from a
// fold of every event before it (folded when a list needs it: a fold no list reads is skipped).
CustomerResult ReplayCustomer(const ModelSnapshot& snap, const Customer& c,
                              const ReplayOptions& options, int64_t through_seq) {
  CustomerResult out;
  out.known = snap.model->users.Find(c.user).has_value();
  out.targets = static_cast<int64_t>(c.targets.size());
  RecommendOptions request;
  request.n = options.k;
  request.exclude_unavailable = options.filters;
  std::shared_ptr<const FoldedUserEntry> folded;
  std::vector<Recommendation> list;
  bool list_current = false;
  absl::flat_hash_set<int32_t> scored;
  std::vector<StoredEvent> so_far;
  bool pending = false;  // events in so_far that `folded` has not seen
  for (const StoredEvent& se : c.events) {
    const auto item = snap.model->items.Find(se.event.item);
    if (item && std::binary_search(c.targets.begin(), c.targets.end(), *item) &&
        scored.insert(*item).second) {
      if (!list_current && pending) {
        auto entry = FoldUser(snap, c.user, so_far, options.feedback, through_seq);
        if (!entry.ok()) {
          out.status = entry.status();
          return out;
        }
        folded = *std::move(entry);
        pending = false;
        ++out.folds;
      }
      if (!list_current) {
        auto ranked = RankUser(nullptr, snap, c.user, folded.get(), request);
        if (!ranked.ok()) {
          out.status = ranked.status();
          return out;
        }
        list = *std::move(ranked);
        list_current = true;
        ++out.lists;
        if (!list.empty() && list.front().source == RecommendationSource::kPopular) {
          ++out.popular_lists;
        }
      }
      for (size_t r = 0; r < list.size(); ++r) {
        if (list[r].item == *item) {
          ++out.hits;
          out.dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
          break;
        }
      }
    }
    if (!options.fold_in) continue;
    so_far.push_back(se);
    pending = true;
    list_current = false;
  }
  return out;
}

void Add(ReplayMetrics& m, const CustomerResult& r, int k) {
  ++m.users;
  m.hit_rate += r.hits > 0 ? 1.0 : 0.0;
  m.ndcg += r.dcg / Idcg(r.targets, k);
  m.recall += static_cast<double>(r.hits) / static_cast<double>(r.targets);
  m.precision += static_cast<double>(r.hits) / k;
}

void Finish(ReplayMetrics& m) {
  if (m.users == 0) return;
  const double n = static_cast<double>(m.users);
  m.hit_rate /= n;
  m.ndcg /= n;
  m.recall /= n;
  m.precision /= n;
}

nlohmann::json MetricsJson(const ReplayMetrics& m, int k) {
  nlohmann::json j;
  j["users"] = m.users;
  j[absl::StrCat("hit_rate@", k)] = m.hit_rate;
  j[absl::StrCat("ndcg@", k)] = m.ndcg;
  j[absl::StrCat("recall@", k)] = m.recall;
  j[absl::StrCat("precision@", k)] = m.precision;
  return j;
}

}  // namespace

nlohmann::json ReplayResult::ToJson() const {
  nlohmann::json j;
  j["model_version"] = model_version;
  j["after_seq"] = after_seq;
  j["through_seq"] = through_seq;
  j["events"] = events;
  j["targets"] = targets;
  j["lists"] = lists;
  j["popular_lists"] = popular_lists;
  j["folds"] = folds;
  j["replay"] = MetricsJson(all, k);
  j["replay_known_users"] = MetricsJson(known, k);
  j["offline"] = offline.ToJson();
  return j;
}

absl::StatusOr<ReplayResult> Replay(const ModelSnapshot& snap, const EventStore& store,
                                    const ReplayOptions& options) {
  if (options.k < 1) return absl::InvalidArgumentError("replay: k must be at least 1");
  const FactorModel& model = *snap.model;
  if (!model.has_factors()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replay: model ", snap.version(), " has no factors (a popularity model is eval's)"));
  }
  ReplayResult result;
  result.k = options.k;
  result.model_version = snap.version();
  const int64_t trained_through = EventsThroughSeq(model, store);
  result.after_seq = options.after_seq < 0 ? trained_through : options.after_seq;
  ASSIGN_OR_RETURN(const int64_t last, store.LastSeq());
  result.through_seq = options.through_seq > 0 ? std::min(options.through_seq, last) : last;

  // The same events as eval's interactions (what `train --events` reads), and eval on them.
  EventDataOptions data;
  data.feedback = model.params.feedback;
  data.type_weights = options.feedback.type_weights;
  data.rating_neutral = RatingNeutralOf(model.params);
  data.after_seq = result.after_seq;
  data.through_seq = result.through_seq;
  ASSIGN_OR_RETURN(Interactions test, EventInteractions(store, data));
  EvalOptions eval;
  eval.k = options.k;
  ASSIGN_OR_RETURN(result.offline, Evaluate(model, test, eval));

  // Customers in order of their first event, each with their events and eval's targets.
  std::vector<Customer> customers;
  absl::flat_hash_map<std::string, size_t> index;
  const absl::Status read = store.ForEach(
      result.after_seq,
      [&](const StoredEvent& se) {
        auto [it, fresh] = index.try_emplace(se.event.user, customers.size());
        if (fresh) customers.push_back({se.event.user, {}, {}});
        customers[it->second].events.push_back(se);
        ++result.events;
        return true;
      },
      result.through_seq);
  RETURN_IF_ERROR(read);
  for (int64_t row = 0; row < test.size(); ++row) {
    if (test.value[row] < eval.relevance_threshold) continue;
    const auto item = model.items.Find(test.items.External(test.item[row]));
    const auto it = index.find(test.users.External(test.user[row]));
    if (item && it != index.end()) customers[it->second].targets.push_back(*item);
  }
  for (Customer& c : customers) {
    std::sort(c.targets.begin(), c.targets.end());
    c.targets.erase(std::unique(c.targets.begin(), c.targets.end()), c.targets.end());
  }

  std::vector<CustomerResult> per(customers.size());
  tbb::parallel_for(tbb::blocked_range<size_t>(0, customers.size(), 16),
                    [&](const tbb::blocked_range<size_t>& range) {
                      for (size_t x = range.begin(); x != range.end(); ++x) {
                        if (customers[x].targets.empty()) continue;  // nothing to score
                        per[x] = ReplayCustomer(snap, customers[x], options, trained_through);
                      }
                    });
  for (const CustomerResult& r : per) {
    RETURN_IF_ERROR(r.status);
    result.lists += r.lists;
    result.popular_lists += r.popular_lists;
    result.folds += r.folds;
    if (r.targets == 0) continue;
    result.targets += r.targets;
    Add(result.all, r, options.k);
    if (r.known) Add(result.known, r, options.k);
  }
  Finish(result.all);
  Finish(result.known);
  return result;
}

}  // namespace recloop
