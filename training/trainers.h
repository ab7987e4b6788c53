// The trainers' registry: every model recloop trains, by algorithm name ("als", "bpmf",
// "ease", "popular"), each made from TrainOptions and a TrainHooks (training/train.h) and implementing
// engine/model.h's Model. A new model registers itself in RegisterTrainers.
#ifndef RECLOOP_TRAINING_TRAINERS_H_
#define RECLOOP_TRAINING_TRAINERS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/model.h"
#include "engine/model_registry.h"
#include "training/popularity.h"
#include "training/train.h"

namespace recloop {

using TrainerRegistry = ModelRegistry<TrainOptions, TrainHooks>;

// Adds "als" (explicit or implicit, by TrainOptions::feedback), "bpmf", "ease" (implicit) and
// "popular". Each
// factory refuses bad options with InvalidArgument naming the option. Returns AlreadyExists if
// one of the names is taken.
absl::Status RegisterTrainers(TrainerRegistry* registry);

// The registry RegisterTrainers fills, made on first use and never destroyed. Thread-safe.
const TrainerRegistry& Trainers();

// What a model is fitted on, from `train` (deduplicated, not empty): its ID maps, both
// matrices, and item popularity by `popularity`. Returns ItemPopularity's errors.
absl::StatusOr<TrainingData> MakeTrainingData(const Interactions& train,
                                              const PopularityOptions& popularity);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_TRAINERS_H_
