// FactorModel: a trained recommendation model (ALS factors with biases, or popularity only) and
// the functions that score items with it. Factor matrices are row-major float32, one row per
// user / item, so that a row is contiguous (and FAISS can take the item matrix without a copy).
#ifndef RECLOOP_ENGINE_FACTOR_MODEL_H_
#define RECLOOP_ENGINE_FACTOR_MODEL_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/id_map.h"

namespace recloop {

using FactorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class Algorithm { kAls, kPopular };
enum class Feedback { kExplicit, kImplicit };

std::string_view ToString(Algorithm a);
std::string_view ToString(Feedback f);
absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view s);
absl::StatusOr<Feedback> ParseFeedback(std::string_view s);

// The hyper-parameters a model was trained with (its lineage grows in later formats).
struct ModelParams {
  Algorithm algorithm = Algorithm::kAls;
  Feedback feedback = Feedback::kExplicit;
  int factors = 0;
  int iterations = 0;
  float regularization = 0.0f;
  float bias_regularization = 0.0f;
  float alpha = 0.0f;
  int cg_steps = 0;
  bool cholesky = false;
  uint64_t seed = 0;
};

// Plain data; concurrent const calls are safe.
struct FactorModel {
  ModelParams params;
  IdMap users;
  IdMap items;
  FactorMatrix user_factors;  // users.size() x factors; empty for popularity models
  FactorMatrix item_factors;  // items.size() x factors; empty for popularity models
  Eigen::VectorXf user_bias;  // users.size(), explicit ALS only (else empty)
  Eigen::VectorXf item_bias;  // items.size(), explicit ALS only (else empty)
  float global_mean = 0.0f;   // explicit ALS only
  float min_value = 0.0f;     // range of training values: explicit predictions are clamped to it
  float max_value = 0.0f;
  Eigen::VectorXf item_popularity;  // items.size(): training interactions per item
  CsrMatrix seen;                   // users x items: the training interactions

  int32_t num_users() const { return users.size(); }
  int32_t num_items() const { return items.size(); }
  bool has_factors() const { return user_factors.size() > 0; }
  bool has_biases() const { return user_bias.size() > 0; }

  // Predicted value (rating) of user u for item i, clamped to [min_value, max_value].
  // u or i may be -1 (unknown): the prediction then falls back to the parts that are known
  // (global mean plus the known bias). Popularity models predict the global mean.
  float PredictRating(int32_t u, int32_t i) const;

  // Ranking scores of every item for user u (higher is better), into out (size num_items()).
  // u = -1 (unknown user) or a popularity model gives item popularity.
  void ScoreItems(int32_t u, std::span<float> out) const;
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_FACTOR_MODEL_H_
