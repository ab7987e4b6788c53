// Alternating least squares for explicit ratings (with global mean, user and item biases and
// weighted-lambda regularisation, Zhou et al. 2008) and for implicit feedback (Hu, Koren &
// Volinsky 2008, solved per row by conjugate gradient as in Takacs et al. 2011, or exactly by
// Cholesky). Parallel over rows with oneTBB; deterministic for a seed whatever the thread count.
#ifndef RECLOOP_TRAINING_ALS_H_
#define RECLOOP_TRAINING_ALS_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/factor_model.h"

namespace recloop {

struct AlsOptions {
  FeedbackKind feedback = FeedbackKind::kExplicit;
  // Latent factors (K), >= 1.
  int factors = 64;
  // Full alternations (user half-step + item half-step), >= 1.
  int iterations = 15;
  // Explicit: lambda of the weighted-lambda penalty lambda * n_u * |p_u|^2 (n_u = the row's
  // ratings). Implicit: plain lambda * |x|^2. >= 0. A negative value selects the default for the
  // feedback kind (kDefaultExplicitRegularization / kDefaultImplicitRegularization).
  float regularization = -1.0f;
  // Explicit only: the same weighted penalty on the biases, lambda_b * n_u * b_u^2. >= 0.
  float bias_regularization = 0.1f;
  // Implicit only: confidence c = 1 + alpha * ConfidenceWeight(confidence, value), > 0
  // (engine/factor_model.h). The log weight is the default: it keeps heavy-tailed counts (play
  // hours, views) from letting a few huge values decide a row (BENCHMARKS.md, "Confidence").
  float alpha = 8.0f;
  Confidence confidence = Confidence::kLog;
  // Implicit only: conjugate-gradient steps per row per half-step, warm-started, >= 1.
  int cg_steps = 3;
  // Implicit only: solve each row exactly (Cholesky) instead of by CG.
  bool cholesky = false;
  // Standard deviation of the initial factors is init_scale / sqrt(factors). > 0.
  float init_scale = 0.1f;
  // Seed of the initial factors.
  uint64_t seed = 42;
};

inline constexpr float kDefaultExplicitRegularization = 0.12f;
inline constexpr float kDefaultImplicitRegularization = 100.0f;

// Returns InvalidArgument naming the first out-of-range field.
absl::Status ValidateAlsOptions(const AlsOptions& options);

// Reported after every iteration.
struct IterationStats {
  int iteration = 0;       // 1-based
  double loss = 0.0;       // the regularised objective being minimised (never rises)
  double train_rmse = 0.0; // explicit only: RMSE on the training ratings
  double seconds = 0.0;    // wall time of this iteration
};

using IterationCallback = std::function<void(const IterationStats&)>;

// Initial factors for a warm start (e.g. a retrain from the live model): row r of each side
// replaces the random initial row r where known[r] is nonzero; unknown rows (new users and
// items) keep their random start. Explicit models also take the item biases of known items.
struct AlsWarmStart {
  FactorMatrix user_factors;  // by_user.rows() x factors (or empty: users start at random)
  std::vector<uint8_t> user_known;
  FactorMatrix item_factors;  // by_item.rows() x factors
  Eigen::VectorXf item_bias;  // explicit: by_item.rows(); else empty
  std::vector<uint8_t> item_known;
};

// What seeds each row's initial factors. A row starts from a draw of its own, seeded by
// (options.seed, side, key), so that a user or item starts from the same factors whatever its
// index and whichever process solves it (training/distributed_als.h): TrainModel keys rows by
// AlsRowKey of their external IDs. Without keys, a row's key is its index.
struct AlsRowKeys {
  std::vector<uint64_t> users;  // by_user.rows()
  std::vector<uint64_t> items;  // by_item.rows()
};

enum class AlsSide { kUsers, kItems };

// The key of an external ID: its XXH64 (seed 0).
uint64_t AlsRowKey(std::string_view external_id);

// Initial factors of the rows with these keys: out is keys.size() x options.factors, each row
// normal with standard deviation init_scale / sqrt(factors). Parallel (oneTBB); the result does
// not depend on the thread count.
void AlsInitialFactors(std::span<const uint64_t> keys, AlsSide side, const AlsOptions& options,
                       FactorMatrix* out);

// The building blocks of an iteration, for trainers that hold only some rows (the distributed
// trainer). Each solves every row of `m` (rows x cols) against `other` (cols x factors), exactly
// as AlsTrainer::Iterate does. Explicit: `other_bias` (cols) and the global mean; writes factors
// and bias (rows). Implicit: `gram` is YᵀY + λI over the whole other side (every column, not
// only those of `m`). Outputs must be sized rows x factors (and rows). Parallel (oneTBB).
float AlsRegularization(const AlsOptions& options);  // the λ in effect (defaults resolved)
// The parameters a model trained with `options` records (iterations: options.iterations).
ModelParams AlsModelParams(const AlsOptions& options);
void AlsExplicitHalfStep(const CsrMatrix& m, const FactorMatrix& other,
                         const Eigen::VectorXf& other_bias, float global_mean,
                         const AlsOptions& options, FactorMatrix* factors, Eigen::VectorXf* bias);
void AlsImplicitHalfStep(const CsrMatrix& m, const FactorMatrix& other, const Eigen::MatrixXf& gram,
                         const AlsOptions& options, FactorMatrix* factors);

// Step-by-step training, for callers that drive iterations themselves (benchmarks, warm starts).
// Keeps references to both matrices, which must outlive it. Not thread-safe; each call uses the
// oneTBB arena of the caller.
class AlsTrainer {
 public:
  // Validates options and shapes and draws the initial factors from options.seed and `keys`
  // (null: rows keyed by index). Returns InvalidArgument for bad options or key counts.
  static absl::StatusOr<AlsTrainer> Create(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                           const AlsOptions& options,
                                           const AlsRowKeys* keys = nullptr);

  // Replaces the initial factors of known rows (before the first Iterate). Returns
  // InvalidArgument if a shape does not match.
  absl::Status WarmStart(const AlsWarmStart& warm);

  // One full alternation: the user half-step, then the item half-step. Returns Internal if the
  // factors stop being finite.
  absl::Status Iterate();

  // The objective after the last iteration (see AlsLoss).
  double Loss() const;
  // Explicit only: RMSE on the training ratings.
  double TrainRmse() const;

  const FactorModel& model() const { return model_; }
  FactorModel TakeModel() && { return std::move(model_); }

 private:
  AlsTrainer(const CsrMatrix& by_user, const CsrMatrix& by_item, const AlsOptions& options)
      : by_user_(&by_user), by_item_(&by_item), options_(options) {}

  const CsrMatrix* by_user_;
  const CsrMatrix* by_item_;
  AlsOptions options_;
  FactorModel model_;
  int iteration_ = 0;
};

// What one TrainAls run reports to and starts from (per run, beside the options).
struct AlsRun {
  IterationCallback on_iteration;      // after every iteration; null: none
  const AlsWarmStart* warm = nullptr;  // not owned; null: random start
  const AlsRowKeys* keys = nullptr;    // not owned; null: rows keyed by index
};

struct AlsResult {
  // Without ID maps, popularity or seen matrix (the caller, which owns the data, fills those;
  // see training/trainers.h).
  FactorModel model;
};

// Trains on `by_user` (users x items) and its transpose `by_item`. Returns InvalidArgument for
// bad options, shapes or key counts, Internal if the factors stop being finite. Thread-safe;
// uses the oneTBB arena of the caller.
absl::StatusOr<AlsResult> TrainAls(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                   const AlsOptions& options, const AlsRun& run = {});

// The objective that TrainAls minimises, evaluated for `model` (exposed for tests).
double AlsLoss(const CsrMatrix& by_user, const FactorModel& model, const AlsOptions& options);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_ALS_H_
