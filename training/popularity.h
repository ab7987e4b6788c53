// Item popularity: the score behind the most-popular baseline and the cold-start fallback of
// every model (FactorModel::item_popularity). Either a plain interaction count or a
// time-decayed count in which an interaction loses half its weight every half_life_days.
#ifndef RECLOOP_TRAINING_POPULARITY_H_
#define RECLOOP_TRAINING_POPULARITY_H_

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/interactions.h"

namespace recloop {

struct PopularityOptions {
  // Half-life of an interaction's weight, in days. 0 (the default) means no decay: the score is
  // the plain interaction count. > 0 weighs an interaction at time t by
  // 0.5^((t_max − t) / half_life), with t_max the latest timestamp in the data, so recent
  // interactions count more. Must be finite and >= 0.
  double half_life_days = 0.0;
};

// Returns InvalidArgument naming the field if `options` is out of range.
absl::Status ValidatePopularityOptions(const PopularityOptions& options);

// Popularity score of every item of data.items (size data.items.size(); items without
// interactions score 0): the count of interactions, or the decayed count as above. Every row
// counts once whatever its value (deduplicate first for "users who interacted"). Returns
// InvalidArgument for bad options, or when decay is asked for and the data has no timestamps
// (data.has_timestamps is false), since every weight would silently be 1. Thread-safe (pure).
absl::StatusOr<Eigen::VectorXf> ItemPopularity(const Interactions& data,
                                               const PopularityOptions& options = {});

}  // namespace recloop

#endif  // RECLOOP_TRAINING_POPULARITY_H_
