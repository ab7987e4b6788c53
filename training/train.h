// Training a complete model (ALS, BPMF or popularity) from interactions: builds the matrices,
// makes the model that TrainOptions::algorithm names from the trainer registry
// (training/trainers.h), fits it, and returns it with the ID maps, popularity and seen-items
// matrix that serving needs.
#ifndef RECLOOP_TRAINING_TRAIN_H_
#define RECLOOP_TRAINING_TRAIN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/factor_model.h"
#include "engine/model.h"
#include "training/als.h"
#include "training/bpmf.h"
#include "training/ease.h"
#include "training/popularity.h"

namespace recloop {

struct TrainOptions {
  Algorithm algorithm = Algorithm::kAls;
  // The kind of feedback the data holds, for every algorithm: ALS trains on it (it overrides
  // als.feedback), BPMF takes explicit ratings only, and every model is tagged with it.
  FeedbackKind feedback = FeedbackKind::kExplicit;
  AlsOptions als;    // used when algorithm == kAls (als.feedback is set from `feedback`)
  BpmfOptions bpmf;  // used when algorithm == kBpmf
  EaseOptions ease;  // used when algorithm == kEase
  // Implicit models fitted on ratings as preferences (RatingPreference): the neutral rating,
  // recorded in the model (ModelParams::rating_neutral) so that rating events fold in alike.
  // 0: not fitted on ratings.
  float rating_neutral = 0.0f;
  // How FactorModel::item_popularity is computed, for every algorithm (it is the popularity
  // model's score and every model's cold-start fallback). Default: plain counts.
  PopularityOptions popularity;
};

// What one training run reports to and starts from: per run, beside the options. Pointers are
// not owned and must outlive the run; each field is used by the algorithms it names.
struct TrainHooks {
  // ALS: progress after every iteration. Null: none.
  IterationCallback on_iteration;
  // BPMF: progress after every sweep. Null: none.
  BpmfCallback on_sweep;
  // BPMF: a held-out set (any ID maps; matched by external ID) to report the running average's
  // RMSE on (in on_sweep) and the cost of thinning (into bpmf_report). Null: none.
  const Interactions* probe = nullptr;
  // BPMF: receives the report of the chain. Null: not reported.
  BpmfReport* bpmf_report = nullptr;
  // ALS: start from this model's factors for every user and item it knows (matched by external
  // ID; it must have the same factors and feedback kind, else it is ignored), so that a retrain
  // converges in a few iterations. Null: random start.
  const FactorModel* warm_start = nullptr;
};

// Fits the model options.algorithm names on `train` (deduplicated) and returns it. Returns
// InvalidArgument for bad options (naming the option) or empty data, and the trainer's errors
// (e.g. Internal if it diverged).
absl::StatusOr<std::unique_ptr<Model>> FitModel(const Interactions& train,
                                                const TrainOptions& options,
                                                const TrainHooks& run = {});

// FitModel's data. Errors as FitModel's.
absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const TrainHooks& run = {});
// Shorthand for a run that only follows ALS's iterations.
absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const IterationCallback& on_iteration);

// A most-popular model: item scores are training interaction counts. The cold-start fallback
// and the baseline every ranking figure is compared with.
FactorModel TrainPopular(const Interactions& train, FeedbackKind feedback);

// As above, with item scores from ItemPopularity(train, popularity) (e.g. time-decayed).
// Returns InvalidArgument for bad options or decay without timestamps.
absl::StatusOr<FactorModel> TrainPopular(const Interactions& train, FeedbackKind feedback,
                                         const PopularityOptions& popularity);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_TRAIN_H_
