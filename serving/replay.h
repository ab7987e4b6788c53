// Replay: the logged feedback of an event store run again, in log order, through the server's
// own serving path against a model (`recloop replay`), to rank candidate models by what they
// would have served before any customer sees them.
//
// For each customer, before each of their events, the list the server would have answered
// GET /v1/recommendations/{user} with is ranked exactly as the server ranks it (RankUser:
// the ANN index, the already-seen filter, the catalogue's availability filter, the popular
// fallback for a customer the model does not know), and after the event the customer is
// folded in again (FoldUser, the server's one fold: the model's training row plus the events
// so far), as the server does on feedback.
//
// What is scored is what eval scores, per customer: the targets are the items eval would count
// as the customer's relevant test items (training/evaluate.h, over the same events turned into
// interactions as `train --events` turns them), each scored once, at its first event, against
// the list served just before it. So the metrics are eval's, hit rate, NDCG, recall and
// precision at k averaged over customers, with one difference that is the point of a replay:
// the list may change between a customer's events. With fold-in and filters off, it does not,
// and replay equals eval on the customers the model knows (`known`).
//
// Not replayed: catalogue changes, erasures and new items indexed while the events were
// logged (the catalogue and the model are taken as they are now), and retrains.
#ifndef RECLOOP_SERVING_REPLAY_H_
#define RECLOOP_SERVING_REPLAY_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "data/event_store.h"
#include "nlohmann/json_fwd.hpp"
#include "serving/feedback.h"
#include "serving/live_model.h"
#include "training/evaluate.h"

namespace recloop {

struct ReplayOptions {
  int k = 10;  // list length and metric cut-off, >= 1
  // Fold the customer in again after each event (the server's read-your-writes).
  bool fold_in = true;
  // The catalogue's availability filter (the already-seen filter is eval's protocol too and
  // always applies).
  bool filters = true;
  // The events replayed: after_seq < seq <= through_seq (0 = to the last). A negative after_seq
  // starts after the model's last trained event of this store (data/event_interactions.h
  // EventsThroughSeq): the events the model has not seen.
  int64_t after_seq = -1;
  int64_t through_seq = 0;
  FeedbackOptions feedback;  // event type weights, as the server's
};

// Averages over the customers with at least one target.
struct ReplayMetrics {
  int64_t users = 0;
  double hit_rate = 0, ndcg = 0, recall = 0, precision = 0;
};

struct ReplayResult {
  int k = 10;
  std::string model_version;
  int64_t after_seq = 0, through_seq = 0;  // the events replayed
  int64_t events = 0;                      // events replayed
  int64_t targets = 0;                     // (customer, item) pairs scored
  int64_t lists = 0;                       // lists ranked
  int64_t popular_lists = 0;               // of those, the popular fallback's
  int64_t folds = 0;                       // folds a list was ranked from
  ReplayMetrics all;    // every customer, new ones too (served popular items until folded)
  ReplayMetrics known;  // the customers the model was trained on: what eval ranks
  EvalResult offline;   // eval on the same events

  // {"model_version", "events", ..., "replay": {"users", "hit_rate@K", "ndcg@K", "recall@K",
  //  "precision@K"}, "replay_known_users": {...}, "offline": EvalResult::ToJson()}
  nlohmann::json ToJson() const;
};

// Replays `store`'s events against `snap` (a snapshot of LiveModel: model, index, catalogue).
// Parallel over customers (oneTBB: each customer's events stay in order, and customers do not
// affect each other, since a fold reads only the model's item side); deterministic. Errors:
// InvalidArgument for k < 1 or a model without factors; the store's; the folds'.
absl::StatusOr<ReplayResult> Replay(const ModelSnapshot& snap, const EventStore& store,
                                    const ReplayOptions& options);

}  // namespace recloop

#endif  // RECLOOP_SERVING_REPLAY_H_
