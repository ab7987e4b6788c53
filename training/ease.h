// EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form
// item-item model. With X the users x items consumption matrix (1 wherever a preference was
// stored, liked or disliked) and G = XᵀX, P = (G + λI)⁻¹ and B = I − P·diag(1/diag(P)) (so
// diag(B) = 0); a user with history x (+1 liked, −1 disliked: the sign of each preference)
// scores item j as x·B[:, j], so a dislike counts against the items that go with it.
//
// It is stored as a factor model with K = items: the item "factors" are the columns of B and a
// user's "factors" are their history x, so that everything that scores factor models (FAISS,
// Recommender, Evaluate) serves it unchanged, and fold-in is exact and instant (the history is
// the user). The price is K = items: training holds three items x items float matrices (about
// 12·items² bytes, plus 4·users·items for the dense histories: 3.3 GB at 10K items and 50K
// users, about 40 GB at 50K items) and costs O(Σ_u n_u² + items³); a request
// costs O(items²) with the exact index (a dense dot product per item). Hence the cap,
// EaseOptions::max_items: above it, train refuses and als is the model to use.
#ifndef RECLOOP_TRAINING_EASE_H_
#define RECLOOP_TRAINING_EASE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/factor_model.h"

namespace recloop {

struct EaseOptions {
  // λ of (G + λI)⁻¹, > 0. Steck's values are in the hundreds; larger is smoother (more
  // popular items), smaller fits co-occurrence closer.
  float regularization = 300.0f;
  // The most items EASE trains on (memory: about 12·items² bytes while training, plus the
  // users' dense histories).
  int32_t max_items = 20'000;
};

// Returns InvalidArgument naming the first out-of-range field.
absl::Status ValidateEaseOptions(const EaseOptions& options);

// Fits EASE on `by_user` (users x items, deduplicated; values signed preferences) with its
// transpose `by_item`. The model has algorithm kEase, feedback implicit, params.factors = items
// and params.regularization = λ; user_factors rows are the users' histories (PreferenceSign).
// Returns InvalidArgument for bad options or more than max_items items, Internal if G + λI is
// not positive definite. Parallel over items (oneTBB) for G; deterministic.
absl::StatusOr<FactorModel> TrainEase(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                      const EaseOptions& options);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_EASE_H_
