// FactorModel: a trained recommendation model (ALS factors with biases, or popularity only) and
// the functions that score items with it. Factor matrices are row-major float32, one row per
// user / item, so that a row is contiguous (and FAISS can take the item matrix without a copy).
#ifndef RECLOOP_ENGINE_FACTOR_MODEL_H_
#define RECLOOP_ENGINE_FACTOR_MODEL_H_

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "Eigen/Core"
#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/id_map.h"

namespace recloop {

using FactorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class Algorithm { kAls, kPopular, kBpmf, kEase };
enum class FeedbackKind { kExplicit, kImplicit };

// How an implicit model weighs a stored value v: its confidence is c = 1 + alpha *
// ConfidenceWeight(t, v), with linear |v| (Hu, Koren & Volinsky 2008's first form) or log
// log(1 + |v|) (their second, for heavy-tailed counts such as play hours or views). The sign of
// v is the preference: v > 0 liked (p = 1), v < 0 disliked (p = 0, held with that confidence).
enum class Confidence { kLinear, kLog };

std::string_view ToString(Algorithm a);
std::string_view ToString(FeedbackKind f);
std::string_view ToString(Confidence c);
absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view s);
absl::StatusOr<FeedbackKind> ParseFeedbackKind(std::string_view s);
absl::StatusOr<Confidence> ParseConfidence(std::string_view s);

// See Confidence. Pure.
inline float ConfidenceWeight(Confidence t, float v) {
  const float a = v < 0 ? -v : v;
  return t == Confidence::kLog ? std::log1p(a) : a;
}

// A rating as an implicit model's signed value (the rule of docs/training.md, "Ratings as
// preferences"): ratings at or above `neutral` are liked, with strength growing by one a step
// (r - neutral + 1); ratings below are disliked (r - neutral < 0). On a 1-5 scale with neutral
// 3: 1 -> -2, 2 -> -1, 3 -> 1, 4 -> 2, 5 -> 3. Pure.
inline float RatingPreference(float rating, float neutral) {
  return rating >= neutral ? rating - neutral + 1.0f : rating - neutral;
}
// The sign of a stored value as an item-item model's (EASE's) history entry: +1 liked (v > 0),
// -1 disliked (v < 0), 0 otherwise. Pure.
inline float PreferenceSign(float v) { return v > 0 ? 1.0f : (v < 0 ? -1.0f : 0.0f); }

// The neutral rating of a 1-5 scale, for models that were not trained on ratings.
inline constexpr float kDefaultRatingNeutral = 3.0f;

// The hyper-parameters a model was trained with (its lineage grows in later formats).
struct ModelParams {
  Algorithm algorithm = Algorithm::kAls;
  FeedbackKind feedback = FeedbackKind::kExplicit;
  int factors = 0;
  int iterations = 0;
  float regularization = 0.0f;
  float bias_regularization = 0.0f;
  float alpha = 0.0f;
  Confidence confidence = Confidence::kLinear;  // implicit: the weight of a value (see above)
  // Implicit models trained on ratings: the neutral rating of RatingPreference, with which
  // rating events are folded. 0: not trained on ratings (kDefaultRatingNeutral applies).
  float rating_neutral = 0.0f;
  int cg_steps = 0;
  bool cholesky = false;
  uint64_t seed = 0;
  // Half-life of the time decay of item_popularity in days; 0 = plain interaction counts.
  double popularity_half_life_days = 0.0;
  // BPMF (training/bpmf.h): factors is K of one sample; the factor matrices hold served_samples
  // samples side by side (K * served_samples columns).
  int burn_in = 0;
  int samples = 0;
  int served_samples = 0;
  float noise_precision = 0.0f;  // fixed α, or 0: sampled
  float user_noise_dof = 0.0f;   // Student-t noise per user (0: Gaussian)
  float item_noise_dof = 0.0f;
};

// Which file a model was trained (or tested) on, and its content when it was read.
struct DataFingerprint {
  std::string path;
  int64_t rows = 0;            // interactions read from it (after merging duplicates)
  int64_t bytes = 0;           // file size
  uint64_t content_xxh64 = 0;  // XXH64 (seed 0) of the whole file (engine/model_io.h)
};

// Where a model came from. The caller of SaveModel fills data, test, split, the interaction
// counts and metrics; SaveModel assigns version, created_* and library_version, and LoadModel
// returns all of it. Empty for a model that was never saved.
struct ModelLineage {
  std::string version;          // the version directory, e.g. "v000003"
  std::string library_version;  // recloop version that wrote the model
  int64_t created_unix_ms = 0;
  std::string created_utc;  // ISO 8601
  DataFingerprint data;     // the training file
  DataFingerprint test;     // the held-out file, if one was given (else path empty)
  std::string split;        // split spec (data/split.h), empty if none
  int64_t train_interactions = 0;
  int64_t test_interactions = 0;
  std::map<std::string, double> metrics;  // held-out metrics, e.g. "ndcg@10"
  // Trained on an event store: the last event seq it includes (0: none). Serving folds in only
  // the events after it, so that none counts twice.
  int64_t events_through_seq = 0;
  // The event store those seqs belong to (EventStore::id()): seqs of another store mean nothing.
  std::string events_store_id;
  std::string parent_version;  // the live version a retrain started from, if any
  std::string gate;            // "passed", "skipped" or "forced" for a retrained model
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
  Eigen::VectorXf item_popularity;  // items.size(): training interactions per item (time-decayed
                                    // when trained with a popularity half-life)
  CsrMatrix seen;                   // users x items: the training interactions
  // BPMF only (else empty): per served sample s, the draw its user (item) factors were sampled
  // under, for fold-in: row s = [α, τ, μ (K), Λ (K×K, row-major)] (training/bpmf.h).
  FactorMatrix user_prior;
  FactorMatrix item_prior;
  ModelLineage lineage;             // metadata only: never affects predictions

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

// FᵀF + reg·I for a factor matrix (rows x K), as ALS's implicit half-step and fold-in use it.
// Summed over fixed row blocks in a fixed order, so the result is the same bit for bit whatever
// the thread count, and fold-in reproduces the trainer's matrix exactly. Parallel (oneTBB).
Eigen::MatrixXf RegularizedGram(const FactorMatrix& f, float reg);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_FACTOR_MODEL_H_
