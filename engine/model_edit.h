// Model edits: new models made from a trained one without training, for the server's in-place
// extensions (serving/new_item_indexer.h). SwapSides turns a model around so that the engine's
// user fold-in folds an item in; AppendItems adds folded items to the item side.
#ifndef RECLOOP_ENGINE_MODEL_EDIT_H_
#define RECLOOP_ENGINE_MODEL_EDIT_H_

#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/fold_in.h"

namespace recloop {

// `model` with its user and item sides exchanged: its items are the model's users (with their
// factors, biases and, for BPMF, their prior) and its users the model's items, so that
// FoldIn::Create(SwapSides(m)).Fold(user rows, values) is one ALS item half-step against the
// Gram matrix of all users: an item folded in. Parameters, global mean and value range are
// kept. Its user factors (the model's item factors), seen matrix, popularity and lineage are
// left empty: a fold reads none of them, and the item factors may be large.
// Thread-safety: a pure function.
FactorModel SwapSides(const FactorModel& model);

// `model`'s item side (items, item factors, biases, popularity and prior, with the parameters,
// global mean and value range) and no users: the base of a model whose users are folded in
// against it. Thread-safety: a pure function.
FactorModel ItemSide(const FactorModel& model);

// A copy of `model` with items `names` appended after its own (existing item indices are
// unchanged): item names[j] gets the factors and bias of folded[j] (as folded in against
// SwapSides(model)) and popularity popularity[j]. The seen matrix is widened (no user has seen
// a new item). Errors: InvalidArgument if the spans differ in length, a name is already an item
// of the model or repeated, or a folded vector's length is not the model's factor count;
// FailedPrecondition for a model without factors. Thread-safety: a pure function.
absl::StatusOr<FactorModel> AppendItems(const FactorModel& model,
                                        std::span<const std::string> names,
                                        std::span<const FoldedUser> folded,
                                        std::span<const float> popularity);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_MODEL_EDIT_H_
