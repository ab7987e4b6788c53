#include "training/train.h"

#include <algorithm>
#include <numeric>

#include "engine/status_macros.h"

namespace recloop {
namespace {

// Fills what every model type carries besides its factors: IDs, popularity, seen items and the
// value range.
void FillCommon(const Interactions& train, CsrMatrix by_user, FactorModel* m) {
  m->users = train.users;
  m->items = train.items;
  m->item_popularity = Eigen::VectorXf::Zero(train.items.size());
  for (int32_t i : train.item) m->item_popularity[i] += 1.0f;
  const auto [lo, hi] = std::minmax_element(train.value.begin(), train.value.end());
  m->min_value = *lo;
  m->max_value = *hi;
  m->seen = std::move(by_user);
}

}  // namespace

FactorModel TrainPopular(const Interactions& train, Feedback feedback) {
  FactorModel m;
  m.params.algorithm = Algorithm::kPopular;
  m.params.feedback = feedback;
  if (!train.empty()) {
    m.global_mean = static_cast<float>(
        std::accumulate(train.value.begin(), train.value.end(), 0.0) / train.size());
    FillCommon(train, train.ToUserItemMatrix(), &m);
  }
  return m;
}

absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const IterationCallback& on_iteration) {
  if (train.empty()) return absl::InvalidArgumentError("no training interactions");
  if (options.algorithm == Algorithm::kPopular) {
    return TrainPopular(train, options.als.feedback);
  }
  RETURN_IF_ERROR(ValidateAlsOptions(options.als));
  CsrMatrix by_user = train.ToUserItemMatrix();
  const CsrMatrix by_item = by_user.Transpose();
  ASSIGN_OR_RETURN(FactorModel m, TrainAls(by_user, by_item, options.als, on_iteration));
  FillCommon(train, std::move(by_user), &m);
  return m;
}

}  // namespace recloop
