#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace recloop {
namespace {

// The checks FoldIn::Fold makes, for models that fold without it (popularity).
absl::Status CheckHistory(std::span<const int32_t> items, std::span<const float> values,
                          int32_t num_items) {
  if (items.size() != values.size()) {
    return absl::InvalidArgumentError(absl::StrCat("history has ", items.size(), " items but ",
                                                   values.size(), " values"));
  }
  for (size_t j = 0; j < items.size(); ++j) {
    if (items[j] < 0 || items[j] >= num_items) {
      return absl::InvalidArgumentError(
          absl::StrCat("history item ", items[j], " is outside [0, ", num_items, ")"));
    }
    if (!std::isfinite(values[j])) {
      return absl::InvalidArgumentError(absl::StrCat("history value of item ", items[j],
                                                     " is not finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrainingData(const TrainingData& d) {
  if (d.by_user.nnz() == 0) return absl::InvalidArgumentError("no training interactions");
  if (d.by_user.rows() != d.users.size() || d.by_user.cols() != d.items.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "by_user is ", d.by_user.rows(), "x", d.by_user.cols(), " but there are ", d.users.size(),
        " users and ", d.items.size(), " items"));
  }
  if (d.by_user.rows() != d.by_item.cols() || d.by_user.cols() != d.by_item.rows() ||
      d.by_user.nnz() != d.by_item.nnz()) {
    return absl::InvalidArgumentError("by_item is not the transpose of by_user");
  }
  if (d.item_popularity.size() != d.items.size()) {
    return absl::InvalidArgumentError(absl::StrCat("item_popularity has ", d.item_popularity.size(),
                                                   " entries for ", d.items.size(), " items"));
  }
  return absl::OkStatus();
}

std::vector<ScoredItem> Model::Search(const UserState& user, int k,
                                      std::span<const int32_t> exclude) const {
  std::vector<float> scores(num_items());
  Score(user, scores);
  return TopK(scores, k, exclude);
}

absl::Status FactorModelBase::Fit(TrainingData data) {
  RETURN_IF_ERROR(ValidateTrainingData(data));
  return FitChecked(std::move(data));
}

absl::Status FactorModelBase::CheckRestore(const FactorModel&) const { return absl::OkStatus(); }

absl::Status FactorModelBase::Install(FactorModel data) {
  ready_ = false;
  fold_.reset();
  data_ = std::move(data);
  if (data_.item_factors.size() > 0) {
    ASSIGN_OR_RETURN(FoldIn f, FoldIn::Create(data_));
    fold_.emplace(std::move(f));
  }
  ready_ = true;
  return absl::OkStatus();
}

absl::Status FactorModelBase::Restore(FactorModel data) {
  RETURN_IF_ERROR(CheckRestore(data));
  if (data.item_popularity.size() != data.num_items()) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", data.num_items(), " items but ",
                                                   data.item_popularity.size(),
                                                   " popularity entries"));
  }
  return Install(std::move(data));
}

absl::Status FactorModelBase::Adopt(FactorModel fitted, TrainingData data) {
  fitted.users = std::move(data.users);
  fitted.items = std::move(data.items);
  fitted.item_popularity = std::move(data.item_popularity);
  const std::vector<float>& values = data.by_user.values();
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  fitted.min_value = *lo;
  fitted.max_value = *hi;
  fitted.seen = std::move(data.by_user);
  fitted.params.popularity_half_life_days = data.popularity_half_life_days;
  return Install(std::move(fitted));
}

FactorModel FactorModelBase::TakeData() && {
  ready_ = false;
  fold_.reset();
  return std::move(data_);
}

absl::StatusOr<UserState> FactorModelBase::Fold(std::span<const int32_t> items,
                                                std::span<const float> values) const {
  if (!ready_) return absl::FailedPreconditionError("the model is not fitted or restored");
  UserState user;
  if (!fold_) {  // nothing personal to fold: popularity ranks every user
    RETURN_IF_ERROR(CheckHistory(items, values, num_items()));
    return user;
  }
  ASSIGN_OR_RETURN(FoldedUser f, fold_->Fold(items, values));
  user.cold_start = f.cold_start;
  user.factors = std::move(f.factors);
  user.bias = f.bias;
  return user;
}

void FactorModelBase::Score(const UserState& user, std::span<float> out) const {
  Eigen::Map<Eigen::VectorXf> scores(out.data(), num_items());
  if (user.cold_start || !fold_) {
    scores = data_.item_popularity;
    return;
  }
  // The same product as FactorModel::ScoreItems, so that a user folded to their trained vector
  // scores exactly as the trained user does.
  scores.noalias() = data_.item_factors * user.factors;
  if (data_.has_biases()) scores += data_.item_bias;
}

absl::StatusOr<SavedModel> SaveModel(const Model& model, const std::string& models_dir,
                                     const SaveModelOptions& options) {
  return SaveModel(model.data(), models_dir, options);
}

}  // namespace recloop
