#include "training/bpmf.h"

#include <chrono>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "Eigen/Cholesky"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;
using Vector = Eigen::VectorXf;
using Matrix = Eigen::MatrixXf;
using MatrixD = Eigen::MatrixXd;
using VectorD = Eigen::VectorXd;
using RowBlock = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int32_t kRowGrain = 16;
// Rows per block of the sums over rows: fixed, so the sums do not depend on the thread count.
constexpr int32_t kSumBlock = 1024;
// Hyper-prior constants (Salakhutdinov & Mnih 2008: μ0 = 0, β0 = 2, ν0 = K, W0 = I), and
// Gamma(a, rate b) priors on the bias precisions and the noise precision.
constexpr double kBeta0 = 2.0;
constexpr double kGammaShape = 1.0;
constexpr double kGammaRate = 1.0;

// Streams of random numbers. Every row of every sweep has its own, seeded from (seed, sweep,
// stream, row), so no draw depends on which thread makes it.
enum Stream : uint64_t {
  kInitUsers = 1, kInitItems, kUserRows, kItemRows, kUserHyper, kItemHyper, kNoise,
  kUserWeights, kItemWeights
};

uint64_t Mix(uint64_t x) {  // SplitMix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::mt19937_64 StreamRng(uint64_t seed, int sweep, Stream stream, int64_t row) {
  return std::mt19937_64(
      Mix(Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(sweep)) ^ stream) ^ static_cast<uint64_t>(row)));
}

// Σ over rows of f(r) (a double or an Eigen matrix of doubles), summed per fixed block in
// parallel and then over the blocks in order: deterministic whatever the thread count.
template <typename T, typename F>
T SumOverRows(int32_t rows, const T& zero, F f) {
  const int32_t blocks = (rows + kSumBlock - 1) / kSumBlock;
  std::vector<T> partial(blocks, zero);
  tbb::parallel_for(0, blocks, [&](int32_t b) {
    T s = zero;
    const int32_t end = std::min(rows, (b + 1) * kSumBlock);
    for (int32_t r = b * kSumBlock; r < end; ++r) s += f(r);
    partial[b] = s;
  });
  T total = zero;
  for (const T& p : partial) total += p;
  return total;
}

// A side's hyper-parameters: factor prior N(mu, lambda⁻¹), bias prior N(0, 1/tau).
struct Hyper {
  Vector mu;
  Matrix lambda;
  float tau = 1.0f;
};

// Draws (μ, Λ) from the Normal–Wishart posterior given the rows of `f`, and τ from its Gamma
// posterior given `bias`. Wishart by Bartlett's decomposition; no matrix is inverted.
Hyper SampleHyper(const FactorMatrix& f, const Vector& bias, std::mt19937_64* rng) {
  const int k = static_cast<int>(f.cols());
  const int32_t n = static_cast<int32_t>(f.rows());
  const VectorD zero_k = VectorD::Zero(k);
  const VectorD mean =
      SumOverRows<VectorD>(n, zero_k, [&](int32_t r) -> VectorD {
        return f.row(r).transpose().cast<double>();
      }) / std::max(n, 1);
  // N·S = FᵀF − N·x̄x̄ᵀ, with FᵀF from engine's blocked, thread-count-independent Gram.
  const MatrixD scatter =
      RegularizedGram(f, 0.0f).cast<double>() - static_cast<double>(n) * mean * mean.transpose();
  const double beta = kBeta0 + n;
  const double nu = k + n;  // ν0 = K
  const VectorD mu_post = (n * mean) / beta;  // μ0 = 0
  // W*⁻¹ = W0⁻¹ + N·S + β0·N/β* · x̄x̄ᵀ (W0 = I).
  MatrixD w_inv = MatrixD::Identity(k, k) + scatter + (kBeta0 * n / beta) * mean * mean.transpose();
  w_inv = 0.5 * (w_inv + w_inv.transpose());
  // Λ ~ Wishart(W*, ν*): with W*⁻¹ = C Cᵀ, Λ = (C⁻ᵀA)(C⁻ᵀA)ᵀ for the Bartlett factor A.
  const Eigen::LLT<MatrixD> c(w_inv);
  std::normal_distribution<double> normal;
  MatrixD a = MatrixD::Zero(k, k);
  for (int i = 0; i < k; ++i) {
    std::chi_squared_distribution<double> chi2(nu - i);
    a(i, i) = std::sqrt(chi2(*rng));
    for (int j = 0; j < i; ++j) a(i, j) = normal(*rng);
  }
  const MatrixD b = c.matrixU().solve(a);  // Cᵀ B = A
  const MatrixD lambda = b * b.transpose();
  // μ ~ N(μ*, (β*Λ)⁻¹): with Λ = L Lᵀ, μ = μ* + L⁻ᵀ z / √β*.
  const Eigen::LLT<MatrixD> l(lambda);
  VectorD z(k);
  for (int i = 0; i < k; ++i) z[i] = normal(*rng);
  const VectorD mu = mu_post + l.matrixU().solve(z) / std::sqrt(beta);
  // τ ~ Gamma(a + N/2, rate b + Σb²/2).
  const double sq = SumOverRows<double>(n, 0.0, [&](int32_t r) {
    return static_cast<double>(bias[r]) * bias[r];
  });
  std::gamma_distribution<double> gamma(kGammaShape + 0.5 * n, 1.0 / (kGammaRate + 0.5 * sq));
  Hyper h;
  h.mu = mu.cast<float>();
  h.lambda = lambda.cast<float>();
  h.tau = static_cast<float>(gamma(*rng));
  return h;
}

// Draws every row r of `m` (rows x cols): x = [factors_r, bias_r] from
//   N(A⁻¹b, A⁻¹), A = P0 + α ZᵀZ, b = P0 m0 + α Zᵀy,
// with Z's rows [other factors, 1], y = value − μ − other bias, and the prior P0 = diag(Λ, τ),
// m0 = [μ_side, 0]. Sampled as x = L⁻ᵀ(L⁻¹b + z) with A = L Lᵀ. A row without data draws from
// its prior (the same formula).
void SampleRows(const CsrMatrix& m, const FactorMatrix& other, const Vector& other_bias,
                float global_mean, float alpha, const Vector& row_weight,
                const Vector& other_weight, const Hyper& h, uint64_t seed, int sweep,
                Stream stream, FactorMatrix* factors, Vector* bias) {
  const int k = static_cast<int>(other.cols());
  Matrix prior = Matrix::Zero(k + 1, k + 1);
  prior.topLeftCorner(k, k) = h.lambda;
  prior(k, k) = h.tau;
  Vector prior_b = Vector::Zero(k + 1);
  prior_b.head(k) = h.lambda * h.mu;
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, m.rows(), kRowGrain), [&](const auto& range) {
    RowBlock z;
    Vector y, b(k + 1), x(k + 1);
    Matrix a(k + 1, k + 1);
    Eigen::LLT<Matrix, Eigen::Lower> llt(k + 1);
    std::normal_distribution<float> normal;
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      const auto cols = m.RowIndices(r);
      const auto vals = m.RowValues(r);
      const int64_t n = static_cast<int64_t>(cols.size());
      z.resize(n, k + 1);
      y.resize(n);
      // Each rating weighs its noise precision α·w_row·w_other: rows of z and y scaled by the
      // square root, so that one rank update and one product give ZᵀWZ and ZᵀWy.
      const float wr = alpha * row_weight[r];
      for (int64_t j = 0; j < n; ++j) {
        const int32_t c = cols[j];
        const float w = std::sqrt(wr * other_weight[c]);
        z.row(j).head(k) = w * other.row(c);
        z(j, k) = w;
        y[j] = w * (vals[j] - global_mean - other_bias[c]);
      }
      a = prior;
      a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose());
      b.noalias() = prior_b;
      b.noalias() += z.transpose() * y;
      llt.compute(a);
      std::mt19937_64 rng = StreamRng(seed, sweep, stream, r);
      x = llt.matrixL().solve(b);
      for (int i = 0; i <= k; ++i) x[i] += normal(rng);
      llt.matrixU().solveInPlace(x);
      factors->row(r) = x.head(k).transpose();
      (*bias)[r] = x[k];
    }
  });
}

// The squared residuals of the current sample, summed per row of `m` (by_user or by_item,
// with `row`/`col` the matching sides of the sample), each weighted by the other side's
// weight; into `out` (m.rows()).
void RowSquaredErrors(const CsrMatrix& m, const FactorMatrix& row_factors, const Vector& row_bias,
                      const FactorMatrix& col_factors, const Vector& col_bias, float global_mean,
                      const Vector& col_weight, std::vector<double>* out) {
  out->assign(m.rows(), 0.0);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, m.rows(), kRowGrain), [&](const auto& range) {
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      const auto cols = m.RowIndices(r);
      const auto vals = m.RowValues(r);
      double e = 0.0;
      for (size_t j = 0; j < cols.size(); ++j) {
        const int32_t c = cols[j];
        const double d = vals[j] - (global_mean + row_bias[r] + col_bias[c] +
                                    row_factors.row(r).dot(col_factors.row(c)));
        e += col_weight[c] * d * d;
      }
      (*out)[r] = e;
    }
  });
}

// Draws the noise weights w_r ~ Gamma(ν/2 + n_r/2, rate ν/2 + α·SSE_r/2) of the rows of one
// side (a scale mixture: Student-t noise per row), from that row's own stream.
void SampleWeights(const CsrMatrix& m, const std::vector<double>& sse, float alpha, float nu,
                   uint64_t seed, int sweep, Stream stream, Vector* weight) {
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, m.rows(), 256), [&](const auto& range) {
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      std::mt19937_64 rng = StreamRng(seed, sweep, stream, r);
      const double n = static_cast<double>(m.RowIndices(r).size());
      std::gamma_distribution<double> gamma(0.5 * (nu + n), 1.0 / (0.5 * (nu + alpha * sse[r])));
      (*weight)[r] = static_cast<float>(gamma(rng));
    }
  });
}

// Prior row of one served sample: [α, τ, μ (K), Λ (K×K, row-major)].
void StorePrior(float alpha, const Hyper& h, FactorMatrix* priors, int row) {
  const int k = static_cast<int>(h.mu.size());
  auto out = priors->row(row);
  out[0] = alpha;
  out[1] = h.tau;
  out.segment(2, k) = h.mu.transpose();
  for (int i = 0; i < k; ++i) out.segment(2 + k + i * k, k) = h.lambda.row(i);
}

float Clamp(double v, float lo, float hi) {
  return static_cast<float>(std::min<double>(hi, std::max<double>(lo, v)));
}

}  // namespace

absl::Status ValidateBpmfOptions(const BpmfOptions& o) {
  if (o.factors < 1) return absl::InvalidArgumentError("bpmf factors must be >= 1");
  if (o.burn_in < 0) return absl::InvalidArgumentError("bpmf burn-in must be >= 0");
  if (o.samples < 1) return absl::InvalidArgumentError("bpmf samples must be >= 1");
  if (o.served_samples < 1 || o.served_samples > o.samples) {
    return absl::InvalidArgumentError(absl::StrCat("bpmf served samples must be in [1, samples = ",
                                                   o.samples, "], got ", o.served_samples));
  }
  if (!std::isfinite(o.noise_precision)) {
    return absl::InvalidArgumentError("bpmf noise precision must be finite");
  }
  if (!(o.init_scale > 0) || !std::isfinite(o.init_scale)) {
    return absl::InvalidArgumentError("bpmf init scale must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<FactorModel> TrainBpmf(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                      const BpmfOptions& o, const BpmfCallback& on_sweep,
                                      const BpmfProbe* probe, BpmfReport* report) {
  RETURN_IF_ERROR(ValidateBpmfOptions(o));
  if (by_user.rows() != by_item.cols() || by_user.cols() != by_item.rows() ||
      by_user.nnz() != by_item.nnz()) {
    return absl::InvalidArgumentError("by_item is not the transpose of by_user");
  }
  if (by_user.nnz() == 0) return absl::InvalidArgumentError("no training interactions");
  if (probe != nullptr &&
      (probe->item.size() != probe->user.size() || probe->value.size() != probe->user.size())) {
    return absl::InvalidArgumentError("probe columns differ in length");
  }
  const auto chain_start = Clock::now();
  const int k = o.factors;
  const int32_t users = by_user.rows();
  const int32_t items = by_item.rows();
  const auto& values = by_user.values();

  // The current sample.
  FactorModel s;
  s.global_mean =
      static_cast<float>(std::accumulate(values.begin(), values.end(), 0.0) / values.size());
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.user_factors.resize(users, k);
  s.item_factors.resize(items, k);
  {
    std::normal_distribution<float> normal(0.0f, o.init_scale);
    std::mt19937_64 rng = StreamRng(o.seed, 0, kInitUsers, 0);
    for (int64_t i = 0; i < s.user_factors.size(); ++i) s.user_factors.data()[i] = normal(rng);
    rng = StreamRng(o.seed, 0, kInitItems, 0);
    for (int64_t i = 0; i < s.item_factors.size(); ++i) s.item_factors.data()[i] = normal(rng);
  }
  s.user_bias = Vector::Zero(users);
  s.item_bias = Vector::Zero(items);
  float alpha = o.noise_precision > 0 ? o.noise_precision : 2.0f;

  // The served model accumulates here.
  const int served = o.served_samples;
  const float scale = 1.0f / std::sqrt(static_cast<float>(served));
  FactorModel m;
  m.params.algorithm = Algorithm::kBpmf;
  m.params.feedback = Feedback::kExplicit;
  m.params.factors = k;
  m.params.iterations = o.burn_in + o.samples;
  m.params.burn_in = o.burn_in;
  m.params.samples = o.samples;
  m.params.served_samples = served;
  m.params.noise_precision = o.noise_precision;
  m.params.user_noise_dof = o.user_noise_dof;
  m.params.item_noise_dof = o.item_noise_dof;
  m.params.seed = o.seed;
  m.global_mean = s.global_mean;
  m.min_value = *lo;
  m.max_value = *hi;
  m.user_factors.setZero(users, static_cast<int64_t>(k) * served);
  m.item_factors.setZero(items, static_cast<int64_t>(k) * served);
  m.user_bias = Vector::Zero(users);
  m.item_bias = Vector::Zero(items);
  m.user_prior.resize(served, 2 + k + k * k);
  m.item_prior.resize(served, 2 + k + k * k);

  // The running sum of the probe predictions over the kept samples.
  std::vector<double> probe_sum(probe != nullptr ? probe->user.size() : 0, 0.0);
  auto probe_rmse = [&](auto predict) {
    return std::sqrt(SumOverRows<double>(static_cast<int32_t>(probe_sum.size()), 0.0,
                                         [&](int32_t r) {
                                           const double d = predict(r) - probe->value[r];
                                           return d * d;
                                         }) /
                     std::max<size_t>(probe_sum.size(), 1));
  };

  // Per-row noise weights (all 1 without robust noise) and scratch for the residuals.
  Vector user_weight = Vector::Ones(users);
  Vector item_weight = Vector::Ones(items);
  std::vector<double> row_sse;
  int next_served = 0;
  const int total = o.burn_in + o.samples;
  for (int sweep = 1; sweep <= total; ++sweep) {
    const auto start = Clock::now();
    std::mt19937_64 hyper_rng = StreamRng(o.seed, sweep, kUserHyper, 0);
    const Hyper hu = SampleHyper(s.user_factors, s.user_bias, &hyper_rng);
    SampleRows(by_user, s.item_factors, s.item_bias, s.global_mean, alpha, user_weight,
               item_weight, hu, o.seed, sweep, kUserRows, &s.user_factors, &s.user_bias);
    hyper_rng = StreamRng(o.seed, sweep, kItemHyper, 0);
    const Hyper hi_ = SampleHyper(s.item_factors, s.item_bias, &hyper_rng);
    SampleRows(by_item, s.user_factors, s.user_bias, s.global_mean, alpha, item_weight,
               user_weight, hi_, o.seed, sweep, kItemRows, &s.item_factors, &s.item_bias);
    if (!s.user_factors.allFinite() || !s.item_factors.allFinite()) {
      return absl::InternalError(absl::StrCat("BPMF sampling diverged at sweep ", sweep));
    }
    const double alpha_used = alpha;  // the α this sweep's rows were drawn with
    // Noise: the per-row weights given α, then α given the weights.
    if (o.user_noise_dof > 0) {
      RowSquaredErrors(by_user, s.user_factors, s.user_bias, s.item_factors, s.item_bias,
                       s.global_mean, item_weight, &row_sse);
      SampleWeights(by_user, row_sse, alpha, o.user_noise_dof, o.seed, sweep, kUserWeights,
                    &user_weight);
    }
    if (o.item_noise_dof > 0) {
      RowSquaredErrors(by_item, s.item_factors, s.item_bias, s.user_factors, s.user_bias,
                       s.global_mean, user_weight, &row_sse);
      SampleWeights(by_item, row_sse, alpha, o.item_noise_dof, o.seed, sweep, kItemWeights,
                    &item_weight);
    }
    RowSquaredErrors(by_user, s.user_factors, s.user_bias, s.item_factors, s.item_bias,
                     s.global_mean, item_weight, &row_sse);
    const double weighted_sse = SumOverRows<double>(
        users, 0.0, [&](int32_t u) { return user_weight[u] * row_sse[u]; });
    if (o.noise_precision <= 0) {
      std::mt19937_64 rng = StreamRng(o.seed, sweep, kNoise, 0);
      std::gamma_distribution<double> gamma(kGammaShape + 0.5 * values.size(),
                                            1.0 / (kGammaRate + 0.5 * weighted_sse));
      alpha = static_cast<float>(gamma(rng));
    }
    double sse = weighted_sse;
    if (o.item_noise_dof > 0 || o.user_noise_dof > 0) {
      RowSquaredErrors(by_user, s.user_factors, s.user_bias, s.item_factors, s.item_bias,
                       s.global_mean, Vector::Ones(items), &row_sse);
      sse = SumOverRows<double>(users, 0.0, [&](int32_t u) { return row_sse[u]; });
    }
    BpmfSweepStats stats;
    stats.sweep = sweep;
    stats.burn_in = sweep <= o.burn_in;
    stats.alpha = alpha;
    stats.train_rmse = std::sqrt(sse / values.size());
    if (!stats.burn_in) {
      const int kept = sweep - o.burn_in;  // 1-based among the kept samples
      m.user_bias += s.user_bias;
      m.item_bias += s.item_bias;
      // Evenly spaced: kept sample ⌈(j + 1)·samples / served⌉ for j = 0 .. served − 1, so the
      // last kept sample is always served.
      if (next_served < served &&
          static_cast<int64_t>(kept) * served >= static_cast<int64_t>(next_served + 1) * o.samples) {
        m.user_factors.middleCols(static_cast<int64_t>(next_served) * k, k) =
            s.user_factors * scale;
        m.item_factors.middleCols(static_cast<int64_t>(next_served) * k, k) =
            s.item_factors * scale;
        StorePrior(static_cast<float>(alpha_used), hu, &m.user_prior, next_served);
        StorePrior(static_cast<float>(alpha_used), hi_, &m.item_prior, next_served);
        ++next_served;
      }
      if (probe != nullptr) {
        tbb::parallel_for(size_t{0}, probe_sum.size(), [&](size_t r) {
          const int32_t u = probe->user[r];
          const int32_t i = probe->item[r];
          double p = s.global_mean;
          if (u >= 0) p += s.user_bias[u];
          if (i >= 0) p += s.item_bias[i];
          if (u >= 0 && i >= 0) p += s.user_factors.row(u).dot(s.item_factors.row(i));
          probe_sum[r] += p;
        });
        stats.probe_rmse = probe_rmse(
            [&](int32_t r) { return Clamp(probe_sum[r] / kept, m.min_value, m.max_value); });
      }
    }
    stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (on_sweep) on_sweep(stats);
  }
  m.user_bias /= static_cast<float>(o.samples);
  m.item_bias /= static_cast<float>(o.samples);
  if (report != nullptr) {
    *report = BpmfReport{};
    if (probe != nullptr && !probe_sum.empty()) {
      report->probe_rmse_all_samples = probe_rmse(
          [&](int32_t r) { return Clamp(probe_sum[r] / o.samples, m.min_value, m.max_value); });
      report->probe_rmse_served = probe_rmse([&](int32_t r) {
        return m.PredictRating(probe->user[r], probe->item[r]);
      });
    }
    report->seconds = std::chrono::duration<double>(Clock::now() - chain_start).count();
  }
  return m;
}

}  // namespace recloop
