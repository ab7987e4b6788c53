#include "training/train.h"

#include <utility>

#include "engine/status_macros.h"
#include "training/trainers.h"

namespace recloop {

absl::StatusOr<std::unique_ptr<Model>> FitModel(const Interactions& train,
                                                const TrainOptions& options,
                                                const TrainHooks& run) {
  if (train.empty()) return absl::InvalidArgumentError("no training interactions");
  // The factory checks the options before the (long) training run, so that they fail fast.
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Trainers().Create(ToString(options.algorithm), options, run));
  ASSIGN_OR_RETURN(TrainingData data, MakeTrainingData(train, options.popularity));
  RETURN_IF_ERROR(model->Fit(std::move(data)));
  return model;
}

absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const TrainHooks& run) {
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, FitModel(train, options, run));
  FactorModel m = std::move(*model).TakeData();
  m.params.rating_neutral = options.rating_neutral;
  return m;
}

absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const IterationCallback& on_iteration) {
  TrainHooks run;
  run.on_iteration = on_iteration;
  return TrainModel(train, options, run);
}

absl::StatusOr<FactorModel> TrainPopular(const Interactions& train, FeedbackKind feedback,
                                         const PopularityOptions& popularity) {
  TrainOptions options;
  options.algorithm = Algorithm::kPopular;
  options.feedback = feedback;
  options.popularity = popularity;
  if (!train.empty()) return TrainModel(train, options);
  // No data: a model with parameters only (it recommends nothing).
  RETURN_IF_ERROR(ValidatePopularityOptions(popularity));
  FactorModel m;
  m.params.algorithm = Algorithm::kPopular;
  m.params.feedback = feedback;
  m.params.popularity_half_life_days = popularity.half_life_days;
  return m;
}

FactorModel TrainPopular(const Interactions& train, FeedbackKind feedback) {
  // Plain counts need no timestamps: this fails only for item indices outside train.items,
  // which no well-formed Interactions has.
  return *TrainPopular(train, feedback, PopularityOptions{});
}

}  // namespace recloop
