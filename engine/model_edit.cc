#include "engine/model_edit.h"

#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace recloop {

namespace {

// A model without users or items, with `model`'s parameters, global mean and value range.
FactorModel Settings(const FactorModel& model) {
  FactorModel m;
  m.params = model.params;
  m.global_mean = model.global_mean;
  std::tie(m.min_value, m.max_value) = std::tie(model.min_value, model.max_value);
  return m;
}

}  // namespace

FactorModel SwapSides(const FactorModel& model) {
  FactorModel side = Settings(model);
  // Each pair crosswise. BPMF: an item is folded in under the items' prior.
  std::tie(side.items, side.users) = std::tie(model.users, model.items);
  side.item_factors = model.user_factors;
  std::tie(side.item_bias, side.user_bias) = std::tie(model.user_bias, model.item_bias);
  std::tie(side.item_prior, side.user_prior) = std::tie(model.user_prior, model.item_prior);
  return side;
}

FactorModel ItemSide(const FactorModel& model) {
  FactorModel m = Settings(model);
  m.items = model.items;
  std::tie(m.item_factors, m.item_bias) = std::tie(model.item_factors, model.item_bias);
  m.item_popularity = model.item_popularity;
  m.item_prior = model.item_prior;
  return m;
}

absl::StatusOr<FactorModel> AppendItems(const FactorModel& model,
                                        std::span<const std::string> names,
                                        std::span<const FoldedUser> folded,
                                        std::span<const float> popularity) {
  if (!model.has_factors()) {
    return absl::FailedPreconditionError("only a factor model can take new items");
  }
  if (names.size() != folded.size() || names.size() != popularity.size()) {
    return absl::InvalidArgumentError(absl::StrCat("AppendItems got ", names.size(), " names, ",
                                                   folded.size(), " folded vectors and ",
                                                   popularity.size(), " popularities"));
  }
  absl::flat_hash_set<std::string_view> added_names;
  for (size_t j = 0; j < names.size(); ++j) {
    if (model.items.Find(names[j]).has_value() || !added_names.insert(names[j]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("item '", names[j], "' is already in the model or given twice"));
    }
    if (folded[j].factors.size() != model.item_factors.cols()) {
      return absl::InvalidArgumentError(
          absl::StrCat("item '", names[j], "' has ", folded[j].factors.size(),
                       " factors, the model ", model.item_factors.cols()));
    }
  }
  FactorModel next = model;
  const int32_t old_items = model.num_items();
  const int32_t added = static_cast<int32_t>(names.size());
  next.item_factors.conservativeResize(old_items + added, Eigen::NoChange);
  if (next.has_biases()) next.item_bias.conservativeResize(old_items + added);
  next.item_popularity.conservativeResize(old_items + added);
  for (int32_t j = 0; j < added; ++j) {
    next.items.GetOrAdd(names[j]);
    next.item_factors.row(old_items + j) = folded[j].factors.transpose();
    if (next.has_biases()) next.item_bias[old_items + j] = folded[j].bias;
    next.item_popularity[old_items + j] = popularity[j];
  }
  next.seen = CsrMatrix::FromArrays(model.seen.rows(), old_items + added, model.seen.indptr(),
                                    model.seen.indices(), model.seen.values());
  return next;
}

}  // namespace recloop
