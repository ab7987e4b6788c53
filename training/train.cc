#include "training/train.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <utility>

#include "engine/status_macros.h"

namespace recloop {
namespace {

// Fills what every model type carries besides its factors: IDs, popularity, seen items and the
// value range.
void FillCommon(const Interactions& train, CsrMatrix by_user, Eigen::VectorXf popularity,
                FactorModel* m) {
  m->users = train.users;
  m->items = train.items;
  m->item_popularity = std::move(popularity);
  const auto [lo, hi] = std::minmax_element(train.value.begin(), train.value.end());
  m->min_value = *lo;
  m->max_value = *hi;
  m->seen = std::move(by_user);
}

// The rows of `from` for the users and items of `train` that it knows.
AlsWarmStart WarmStartFrom(const FactorModel& from, const Interactions& train, Feedback feedback) {
  const int k = from.params.factors;
  AlsWarmStart w;
  w.user_factors.setZero(train.users.size(), k);
  w.user_known.assign(train.users.size(), 0);
  for (int32_t u = 0; u < train.users.size(); ++u) {
    if (const auto r = from.users.Find(train.users.External(u)); r) {
      w.user_factors.row(u) = from.user_factors.row(*r);
      w.user_known[u] = 1;
    }
  }
  w.item_factors.setZero(train.items.size(), k);
  w.item_known.assign(train.items.size(), 0);
  if (feedback == Feedback::kExplicit) w.item_bias.setZero(train.items.size());
  for (int32_t i = 0; i < train.items.size(); ++i) {
    if (const auto r = from.items.Find(train.items.External(i)); r) {
      w.item_factors.row(i) = from.item_factors.row(*r);
      if (feedback == Feedback::kExplicit) w.item_bias[i] = from.item_bias[*r];
      w.item_known[i] = 1;
    }
  }
  return w;
}

}  // namespace

absl::StatusOr<FactorModel> TrainPopular(const Interactions& train, Feedback feedback,
                                         const PopularityOptions& popularity) {
  FactorModel m;
  m.params.algorithm = Algorithm::kPopular;
  m.params.feedback = feedback;
  RETURN_IF_ERROR(ValidatePopularityOptions(popularity));
  if (!train.empty()) {
    ASSIGN_OR_RETURN(Eigen::VectorXf scores, ItemPopularity(train, popularity));
    m.global_mean = static_cast<float>(
        std::accumulate(train.value.begin(), train.value.end(), 0.0) / train.size());
    FillCommon(train, train.ToUserItemMatrix(), std::move(scores), &m);
  }
  m.params.popularity_half_life_days = popularity.half_life_days;
  return m;
}

FactorModel TrainPopular(const Interactions& train, Feedback feedback) {
  // Plain counts need no timestamps: this fails only for item indices outside train.items,
  // which no well-formed Interactions has.
  return *TrainPopular(train, feedback, PopularityOptions{});
}

absl::StatusOr<FactorModel> TrainModel(const Interactions& train, const TrainOptions& options,
                                       const IterationCallback& on_iteration) {
  if (train.empty()) return absl::InvalidArgumentError("no training interactions");
  if (options.algorithm == Algorithm::kPopular) {
    return TrainPopular(train, options.als.feedback, options.popularity);
  }
  if (options.algorithm == Algorithm::kBpmf) {
    if (options.als.feedback != Feedback::kExplicit) {
      return absl::InvalidArgumentError("bpmf models explicit ratings: use als for implicit feedback");
    }
    RETURN_IF_ERROR(ValidateBpmfOptions(options.bpmf));
  } else {
    RETURN_IF_ERROR(ValidateAlsOptions(options.als));
  }
  // Before the (long) training run, so that a bad popularity setting fails fast.
  ASSIGN_OR_RETURN(Eigen::VectorXf popularity, ItemPopularity(train, options.popularity));
  CsrMatrix by_user = train.ToUserItemMatrix();
  const CsrMatrix by_item = by_user.Transpose();
  if (options.algorithm == Algorithm::kBpmf) {
    std::optional<BpmfProbe> probe;
    if (options.probe != nullptr) {
      const Interactions& t = *options.probe;
      probe.emplace();
      for (int64_t r = 0; r < t.size(); ++r) {
        probe->user.push_back(train.users.Find(t.users.External(t.user[r])).value_or(-1));
        probe->item.push_back(train.items.Find(t.items.External(t.item[r])).value_or(-1));
        probe->value.push_back(t.value[r]);
      }
    }
    ASSIGN_OR_RETURN(FactorModel m, TrainBpmf(by_user, by_item, options.bpmf,
                                              options.on_sweep ? *options.on_sweep : nullptr,
                                              probe ? &*probe : nullptr, options.bpmf_report));
    FillCommon(train, std::move(by_user), std::move(popularity), &m);
    m.params.popularity_half_life_days = options.popularity.half_life_days;
    return m;
  }
  // Rows start from factors seeded by their external IDs, so that the distributed trainer
  // (which numbers IDs differently) starts from the same point.
  AlsRowKeys keys;
  keys.users.resize(train.users.size());
  keys.items.resize(train.items.size());
  for (int32_t u = 0; u < train.users.size(); ++u) keys.users[u] = AlsRowKey(train.users.External(u));
  for (int32_t i = 0; i < train.items.size(); ++i) keys.items[i] = AlsRowKey(train.items.External(i));
  std::optional<AlsWarmStart> warm;
  if (const FactorModel* w = options.warm_start;
      w != nullptr && w->has_factors() && w->params.factors == options.als.factors &&
      w->params.feedback == options.als.feedback) {
    warm = WarmStartFrom(*w, train, options.als.feedback);
  }
  ASSIGN_OR_RETURN(FactorModel m, TrainAls(by_user, by_item, options.als, on_iteration,
                                           warm ? &*warm : nullptr, &keys));
  FillCommon(train, std::move(by_user), std::move(popularity), &m);
  m.params.popularity_half_life_days = options.popularity.half_life_days;
  return m;
}

}  // namespace recloop
