// Fold-in: a user's factor vector computed from a list of (item, value) interactions with the
// item side of a trained model held fixed. This is exactly one ALS user half-step (the same
// objective and the same float arithmetic as training/als.cc), so a user folded in with their
// training history after convergence gets back their trained vector. The server uses it for
// real-time personalisation of users the model has not seen, or whose history has grown.
#ifndef RECLOOP_ENGINE_FOLD_IN_H_
#define RECLOOP_ENGINE_FOLD_IN_H_

#include <cstdint>
#include <span>
#include <vector>

#include "Eigen/Core"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"

namespace recloop {

// The relative residual at which a CG fold stops (FoldIn): 1e-6 leaves the folded vector within
// about 4e-6 (relative) of the exact solve on the benchmark model, float rounding's order.
inline constexpr float kFoldCgTolerance = 1e-6f;

// The result of one fold-in.
struct FoldedUser {
  // The user's factors, model.params.factors long. Zero when cold_start is true.
  Eigen::VectorXf factors;
  // Explicit models: the user's bias. Always 0 for implicit models and for cold starts.
  float bias = 0.0f;
  // True when the history was empty. The penalised optimum is then the zero vector (as in
  // training), which carries no personal signal: callers should serve popular items instead
  // (FactorModel::item_popularity) and say so in the result's source.
  bool cold_start = false;
};

// Solves the fold-in problem for one model:
//   explicit: min Σ_j (v_j − μ − b_i(j) − b − x·q_i(j))² + λ·n·|x|² + λ_b·n·b²
//             (weighted-λ, n = number of interactions), solved as the (K+1)×(K+1) normal
//             equations in [b, x] by Cholesky;
//   BPMF (training/bpmf.h): per served sample, the posterior mean of [x_s, b] under that
//             sample's prior and noise precision, given its item factors; x is the samples'
//             means side by side and b their average. Unlike ALS, this is not the trained row
//             (training draws rows at random; fold-in takes their mean).
//   EASE (training/ease.h): the user's vector is the history itself (+1 liked, -1 disliked at
//             each item's index; K = items), exactly as training stores its users;
//   implicit: min Σ_all items c_i (p_i − x·y_i)² + λ|x|² with c = 1 + α|v|, p = [v > 0] on the
//             given items and c = 1, p = 0 elsewhere, i.e. the solution of
//             (YᵀY + λI + Σ (c−1) y yᵀ) x = Σ c·p·y. YᵀY + λI is computed once, in Create.
//             A model trained by CG (the default, params.cg_steps > 0) is folded by the same
//             CG (engine/implicit_cg.h), warm-started from `start` (the user's current vector)
//             and run until the relative residual |b − Ax| / |b| is at most kFoldCgTolerance
//             (at most K steps; Cholesky if it is not reached then). A model trained by
//             Cholesky is folded by Cholesky, exactly as training solves its rows.
// Cost per call: O(n·K² + K³) by Cholesky, with n the history length; O(s·(n·K + K²)) by s CG
// steps (about 10 from a warm start: 4.9 against 12.3 µs by Cholesky on the 100K-item benchmark
// model, K = 64, histories of about 50; BENCHMARKS.md, issue 22).
//
// Thread-safety: immutable after Create; any number of threads may call the const methods
// concurrently. Holds a reference to the model, which must outlive it and stay unchanged.
class FoldIn {
 public:
  // Validates the model and precomputes what every fold-in shares. Returns FailedPrecondition
  // for a model without factors (a popularity model) and InvalidArgument for a model whose
  // shapes or hyper-parameters are inconsistent (e.g. an explicit model without biases, a
  // negative or non-finite regularization).
  static absl::StatusOr<FoldIn> Create(const FactorModel& model);

  // Folds in one user's history: items[j] (dense item index of the model) with value values[j].
  // Each entry counts as one interaction (as in training, where histories are deduplicated
  // first; duplicates here count twice). Returns InvalidArgument if the spans differ in length,
  // an item index is outside [0, num_items()) or a value is not finite; Internal if the system
  // is not positive definite (only possible with zero regularization). An empty history is not
  // an error: it returns cold_start = true (see FoldedUser).
  //
  // `start`, if not empty, is a warm start for implicit models folded by CG (see above): the
  // user's current vector (K floats; another length is ignored). The result then depends on it
  // only within the tolerance.
  absl::StatusOr<FoldedUser> Fold(std::span<const int32_t> items, std::span<const float> values,
                                  std::span<const float> start = {}) const;

  // The predicted value (rating) of a folded user for item i: μ + b + b_i + x·q_i for explicit
  // models, x·y_i for implicit ones, clamped to [model.min_value, model.max_value] as
  // FactorModel::PredictRating is. i must be in [0, num_items()) (not checked: hot path).
  float PredictRating(const FoldedUser& user, int32_t i) const;

  // The ranking score of item i for a folded user (x·q_i + b_i; the user's own bias and μ are
  // constant over items and left out, as in FactorModel::ScoreItems). i as in PredictRating.
  float Score(const FoldedUser& user, int32_t i) const;

  // Why a folded user scores items as they do. The folded vector is linear in the history's
  // right-hand side (ALS: x = A⁻¹ Σ_j r_j z_j with the system A of the history), so the score a
  // recommendation carries splits exactly into one term per history entry plus a base
  // (Hu et al. 2008, section 5; for EASE the terms are B's entries), to float rounding:
  //   implicit ALS, EASE: Score(u, i)                = base + Σ_j terms[j], base = b_i (or 0);
  //   explicit ALS:       μ + u.bias + x·q_i + b_i   = base + Σ_j terms[j], base = μ + b_i
  //                       (PredictRating before its clamp; the user's bias is in the terms).
  // One explanation per target, terms aligned with `items`. Validation and errors as Fold;
  // Unimplemented for BPMF models (a mean over samples, each with its prior: no such split).
  // An empty history gives empty terms and the bias alone. Cost: one fold's factorisation plus
  // O(K² + n·K) per target.
  struct Explanation {
    float base = 0.0f;         // see above
    std::vector<float> terms;  // terms[j]: history entry j's contribution
  };
  absl::StatusOr<std::vector<Explanation>> Explain(std::span<const int32_t> items,
                                                   std::span<const float> values,
                                                   std::span<const int32_t> targets) const;

  int32_t num_items() const { return model_->num_items(); }
  int factors() const { return static_cast<int>(model_->item_factors.cols()); }

 private:
  // InvalidArgument for spans of different lengths, an item outside the model, a non-finite
  // value (Fold's checks).
  absl::Status CheckHistory(std::span<const int32_t> items, std::span<const float> values) const;
  explicit FoldIn(const FactorModel& model) : model_(&model) {}

  absl::StatusOr<FoldedUser> FoldExplicit(std::span<const int32_t> items,
                                          std::span<const float> values) const;
  absl::StatusOr<FoldedUser> FoldImplicit(std::span<const int32_t> items,
                                          std::span<const float> values,
                                          std::span<const float> start) const;
  // The CG fold of a model trained by CG: false if the tolerance was not met in K steps.
  bool FoldImplicitCg(std::span<const int32_t> items, std::span<const float> values,
                      std::span<const float> start, Eigen::VectorXf* x) const;
  absl::StatusOr<FoldedUser> FoldBpmf(std::span<const int32_t> items,
                                      std::span<const float> values) const;

  // BPMF models: one served sample's prior of [factors, bias] and noise precision.
  struct BpmfPrior {
    Eigen::MatrixXf precision;  // (K+1)×(K+1): diag(Λ, τ)
    Eigen::VectorXf b;          // precision · [μ, 0]
    float alpha = 0.0f;
  };

  const FactorModel* model_;  // not owned
  // Implicit models: YᵀY + λI (K×K, column-major as the solver wants it). Empty for explicit.
  Eigen::MatrixXf gram_;
  std::vector<BpmfPrior> bpmf_;  // BPMF models: one per served sample
};

// How repeated interactions with one item combine in a history: implicit models add them up
// (each event is more confidence), explicit models keep the latest (a new rating replaces the
// old one). The same rule as training's (data/event_interactions.h derives its policy from it).
enum class DuplicateRule { kSum, kLast };
DuplicateRule DuplicateRuleFor(FeedbackKind feedback);

// FoldHistory: the one place that turns a stream of (item, value) interactions into the
// deduplicated arrays a fold takes. Used for every fold the server makes (users from their
// stored events, new items from their users' events) and for the retrain gate's live model.
//
// Entries keep the order in which their items first appeared unless SortByItem() is called;
// a fold's sums follow that order, so its result depends on it at float precision.
//
// Thread-safety: not thread-safe; a value type.
class FoldHistory {
 public:
  explicit FoldHistory(DuplicateRule rule) : rule_(rule) {}
  // The rule of `model` (DuplicateRuleFor its feedback).
  explicit FoldHistory(const FactorModel& model)
      : FoldHistory(DuplicateRuleFor(model.params.feedback)) {}

  // One interaction with `item` (a dense index of the side folded against). A repeated item is
  // summed or replaced by the rule.
  void Add(int32_t item, float value);
  // Puts the entries in increasing item order (an order that does not depend on arrival).
  void SortByItem();

  std::span<const int32_t> items() const { return items_; }
  std::span<const float> values() const { return values_; }
  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  bool empty() const { return items_.empty(); }

  // fold.Fold(items(), values()); errors as FoldIn::Fold.
  absl::StatusOr<FoldedUser> FoldWith(const FoldIn& fold, std::span<const float> start = {}) const {
    return fold.Fold(items_, values_, start);
  }

 private:
  DuplicateRule rule_;
  std::vector<int32_t> items_;
  std::vector<float> values_;
  absl::flat_hash_map<int32_t, size_t> position_;  // item -> its entry
  bool positions_stale_ = false;                   // position_ predates SortByItem
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_FOLD_IN_H_
