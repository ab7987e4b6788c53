// Training a complete model (ALS, BPMF or popularity) from interactions: builds the matrices, trains,
// and fills in the ID maps, popularity and seen-items matrix that serving needs.
#ifndef RECLOOP_TRAINING_TRAIN_H_
#define RECLOOP_TRAINING_TRAIN_H_

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/factor_model.h"
#include "training/als.h"
#include "training/bpmf.h"
#include "training/popularity.h"

namespace recloop {

struct TrainOptions {
  Algorithm algorithm = Algorithm::kAls;
  AlsOptions als;  // used when algorithm == kAls; als.feedback also tags popularity models
  BpmfOptions bpmf;  // used when algorithm == kBpmf (explicit feedback only)
  // BPMF: progress after every sweep, and a held-out set (any ID maps; matched by external ID)
  // to report the running average's RMSE on and the cost of thinning (into bpmf_report).
  const BpmfCallback* on_sweep = nullptr;  // not owned
  const Interactions* probe = nullptr;
  BpmfReport* bpmf_report = nullptr;
  // How FactorModel::item_popularity is computed, for every algorithm (it is the popularity
  // model's score and every model's cold-start fallback). Default: plain counts.
  PopularityOptions popularity;
  // ALS only: start from this model's factors for every user and item it knows (matched by
  // external ID; it must have the same factors and feedback kind, else it is ignored), so that
  // a retrain converges in a few iterations. Null: random start.
  const FactorModel* warm_start = nullptr;
};

// Trains on `train` (deduplicated). Returns InvalidArgument for bad options or empty data.
absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const IterationCallback& on_iteration = nullptr);

// A most-popular model: item scores are training interaction counts. The cold-start fallback
// and the baseline every ranking figure is compared with.
FactorModel TrainPopular(const Interactions& train, Feedback feedback);

// As above, with item scores from ItemPopularity(train, popularity) (e.g. time-decayed).
// Returns InvalidArgument for bad options or decay without timestamps.
absl::StatusOr<FactorModel> TrainPopular(const Interactions& train, Feedback feedback,
                                         const PopularityOptions& popularity);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_TRAIN_H_
