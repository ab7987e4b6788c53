// Bayesian probabilistic matrix factorisation (Salakhutdinov & Mnih, ICML 2008) for explicit
// ratings, by Gibbs sampling, with user and item biases.
//
// Model: r_ui ~ N(μ + b_u + c_i + p_u·q_i, 1/α). The user factors p_u are drawn from
// N(μ_U, Λ_U⁻¹) with a Normal–Wishart hyper-prior on (μ_U, Λ_U) (μ0 = 0, β0 = 2, ν0 = K,
// W0 = I), and likewise the items; the biases from N(0, 1/τ) with τ ~ Gamma(1, 1) per side; the
// noise precision α from Gamma(1, 1) (or fixed). The hyper-priors set the regularisation from
// the data, so the model needs little tuning.
//
// One sweep draws the user hyper-parameters, every user's [p_u, b_u] jointly from its Gaussian
// conditional (a (K+1)-dimensional Cholesky solve, rows in parallel with oneTBB), the item
// hyper-parameters, every item, then α. Each row draws from its own random stream derived from
// (seed, sweep, side, row), and every sum over rows is taken over fixed blocks in a fixed order,
// so the samples are the same bit for bit whatever the thread count.
//
// The prediction is the posterior mean, approximated by the average over the kept samples s of
// μ + b_u,s + c_i,s + p_u,s·q_i,s. The biases are averaged over every kept sample. The average of
// the dot products is itself one dot product: a user's kept samples concatenated, against the
// item's, each scaled by 1/√S. The model is served that way, so FAISS and fold-in work on it
// unchanged. Serving every kept sample would make the vectors long, so only `served_samples` of
// them, evenly spaced, go into the model; BpmfReport gives the accuracy this thinning costs.
#ifndef RECLOOP_TRAINING_BPMF_H_
#define RECLOOP_TRAINING_BPMF_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/factor_model.h"

namespace recloop {

struct BpmfOptions {
  // Latent factors K of one sample, >= 1. The served vectors have K * served_samples entries.
  int factors = 10;
  // Sweeps discarded before the chain is taken to have mixed, >= 0.
  int burn_in = 100;
  // Sweeps after the burn-in, all of them averaged into the biases and the probe report, >= 1.
  int samples = 300;
  // Kept samples (evenly spaced over `samples`) whose factors make up the served model, in
  // [1, samples].
  int served_samples = 32;
  // Noise precision α of the ratings: > 0 fixes it (the paper uses 2); <= 0 samples it.
  float noise_precision = 0.0f;
  // Robust noise: each user's (item's) ratings have their own noise precision α·w, with
  // w ~ Gamma(ν/2, ν/2) (Student-t noise of ν degrees of freedom, as in Lakshminarayanan,
  // Bouchard & Archambeau 2011), so erratic raters weigh less. 0: plain Gaussian noise.
  float user_noise_dof = 10.0f;
  float item_noise_dof = 10.0f;
  // Standard deviation of the initial factors.
  float init_scale = 0.1f;
  uint64_t seed = 42;
};

// Returns InvalidArgument naming the first out-of-range field.
absl::Status ValidateBpmfOptions(const BpmfOptions& options);

// Reported after every sweep.
struct BpmfSweepStats {
  int sweep = 0;           // 1-based, burn-in included
  bool burn_in = false;    // a burn-in sweep (not averaged)
  double alpha = 0.0;      // the noise precision after this sweep
  double train_rmse = 0.0; // of this sweep's sample on the training ratings
  // With a probe set: RMSE of the average of the samples kept so far (0 during the burn-in).
  double probe_rmse = 0.0;
  double seconds = 0.0;    // wall time of this sweep
};

using BpmfCallback = std::function<void(const BpmfSweepStats&)>;

// A held-out set to report on while sampling: rows (user, item, value) in the training
// matrices' indices; -1 for a user or item the training data does not have (predicted from the
// parts that are known, as FactorModel::PredictRating does).
struct BpmfProbe {
  std::vector<int32_t> user;
  std::vector<int32_t> item;
  std::vector<float> value;
};

// What thinning costs, on the probe set (zeros without one).
struct BpmfReport {
  double probe_rmse_all_samples = 0.0;  // averaging every kept sample
  double probe_rmse_served = 0.0;       // the served model (served_samples of them)
  double seconds = 0.0;                 // wall time of the whole chain
};

// What one TrainBpmf run reports to (per run, beside the options).
struct BpmfRun {
  BpmfCallback on_sweep;              // after every sweep; null: none
  const BpmfProbe* probe = nullptr;   // not owned; null: no probe set (the report is zeros)
};

struct BpmfResult {
  // Algorithm kBpmf, without ID maps, popularity or seen matrix (see training/trainers.h).
  FactorModel model;
  BpmfReport report;
};

// Samples on `by_user` (users x items, explicit ratings) and its transpose `by_item`. Returns
// InvalidArgument for bad options or shapes, Internal if the chain stops being finite.
// Thread-safe; uses the oneTBB arena of the caller.
absl::StatusOr<BpmfResult> TrainBpmf(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                    const BpmfOptions& options, const BpmfRun& run = {});

}  // namespace recloop

#endif  // RECLOOP_TRAINING_BPMF_H_
