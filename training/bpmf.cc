#include "training/bpmf.h"

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "Eigen/Cholesky"
#include "absl/strings/str_cat.h"
#include "base/hash_mix.h"
#include "base/timer.h"
#include "engine/status_macros.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

using Vector = Eigen::VectorXf;
using Matrix = Eigen::MatrixXf;
using MatrixD = Eigen::MatrixXd;
using VectorD = Eigen::VectorXd;

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

std::mt19937_64 StreamRng(uint64_t seed, int sweep, Stream stream, int64_t row) {
  return std::mt19937_64(
      Mix64(Mix64(Mix64(Mix64(seed) ^ static_cast<uint64_t>(sweep)) ^ stream) ^
            static_cast<uint64_t>(row)));
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
    FactorMatrix z;
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

// One Gibbs chain: the current sample, the served model it accumulates into, the per-row noise
// weights and the running sums of the probe predictions. Sweep after sweep, then Finish.
class Chain {
 public:
  Chain(const CsrMatrix& by_user, const CsrMatrix& by_item, const BpmfOptions& o,
        const BpmfProbe* probe);

  // Sweep `sweep` (1-based, burn-in included). Returns Internal if the sample stops being finite.
  absl::StatusOr<BpmfSweepStats> Sweep(int sweep);

  // The served model (biases averaged over the kept samples) and, with a probe, the report.
  BpmfResult Finish(double chain_seconds) &&;

 private:
  void InitSample();
  void InitServed();
  // The noise weights given α, then α given the weights; the sweep's training RMSE.
  double SampleNoise(int sweep);
  // A kept sweep: biases summed, the sample served if its turn has come, the probe updated.
  void Keep(int sweep, const Hyper& hu, const Hyper& hi, double alpha_used, BpmfSweepStats* stats);
  template <typename F>
  double ProbeRmse(F predict) const {
    return std::sqrt(SumOverRows<double>(static_cast<int32_t>(probe_sum_.size()), 0.0,
                                         [&](int32_t r) {
                                           const double d = predict(r) - probe_->value[r];
                                           return d * d;
                                         }) /
                     std::max<size_t>(probe_sum_.size(), 1));
  }

  const CsrMatrix& by_user_;
  const CsrMatrix& by_item_;
  const BpmfOptions& o_;
  const BpmfProbe* probe_;
  const int k_;
  const int32_t users_;
  const int32_t items_;
  FactorModel s_;  // the current sample
  FactorModel m_;  // the served model
  float alpha_;
  Vector user_weight_;  // per-row noise weights (all 1 without robust noise)
  Vector item_weight_;
  std::vector<double> row_sse_;  // scratch for the residuals
  std::vector<double> probe_sum_;  // per probe row: Σ over the kept samples of the prediction
  int next_served_ = 0;
};

Chain::Chain(const CsrMatrix& by_user, const CsrMatrix& by_item, const BpmfOptions& o,
             const BpmfProbe* probe)
    : by_user_(by_user),
      by_item_(by_item),
      o_(o),
      probe_(probe),
      k_(o.factors),
      users_(by_user.rows()),
      items_(by_item.rows()),
      alpha_(o.noise_precision > 0 ? o.noise_precision : 2.0f),
      user_weight_(Vector::Ones(users_)),
      item_weight_(Vector::Ones(items_)),
      probe_sum_(probe != nullptr ? probe->user.size() : 0, 0.0) {
  InitSample();
  InitServed();
}

void Chain::InitSample() {
  const auto& values = by_user_.values();
  s_.global_mean =
      static_cast<float>(std::accumulate(values.begin(), values.end(), 0.0) / values.size());
  s_.user_factors.resize(users_, k_);
  s_.item_factors.resize(items_, k_);
  std::normal_distribution<float> normal(0.0f, o_.init_scale);
  std::mt19937_64 rng = StreamRng(o_.seed, 0, kInitUsers, 0);
  for (int64_t i = 0; i < s_.user_factors.size(); ++i) s_.user_factors.data()[i] = normal(rng);
  rng = StreamRng(o_.seed, 0, kInitItems, 0);
  for (int64_t i = 0; i < s_.item_factors.size(); ++i) s_.item_factors.data()[i] = normal(rng);
  s_.user_bias = Vector::Zero(users_);
  s_.item_bias = Vector::Zero(items_);
}

void Chain::InitServed() {
  const auto& values = by_user_.values();
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const int served = o_.served_samples;
  ModelParams& p = m_.params;
  p.algorithm = Algorithm::kBpmf;
  p.feedback = FeedbackKind::kExplicit;
  p.factors = k_;
  p.iterations = o_.burn_in + o_.samples;
  p.burn_in = o_.burn_in;
  p.samples = o_.samples;
  p.served_samples = served;
  p.noise_precision = o_.noise_precision;
  p.user_noise_dof = o_.user_noise_dof;
  p.item_noise_dof = o_.item_noise_dof;
  p.seed = o_.seed;
  m_.global_mean = s_.global_mean;
  m_.min_value = *lo;
  m_.max_value = *hi;
  m_.user_factors.setZero(users_, static_cast<int64_t>(k_) * served);
  m_.item_factors.setZero(items_, static_cast<int64_t>(k_) * served);
  m_.user_bias = Vector::Zero(users_);
  m_.item_bias = Vector::Zero(items_);
  m_.user_prior.resize(served, 2 + k_ + k_ * k_);
  m_.item_prior.resize(served, 2 + k_ + k_ * k_);
}

double Chain::SampleNoise(int sweep) {
  if (o_.user_noise_dof > 0) {
    RowSquaredErrors(by_user_, s_.user_factors, s_.user_bias, s_.item_factors, s_.item_bias,
                     s_.global_mean, item_weight_, &row_sse_);
    SampleWeights(by_user_, row_sse_, alpha_, o_.user_noise_dof, o_.seed, sweep, kUserWeights,
                  &user_weight_);
  }
  if (o_.item_noise_dof > 0) {
    RowSquaredErrors(by_item_, s_.item_factors, s_.item_bias, s_.user_factors, s_.user_bias,
                     s_.global_mean, user_weight_, &row_sse_);
    SampleWeights(by_item_, row_sse_, alpha_, o_.item_noise_dof, o_.seed, sweep, kItemWeights,
                  &item_weight_);
  }
  RowSquaredErrors(by_user_, s_.user_factors, s_.user_bias, s_.item_factors, s_.item_bias,
                   s_.global_mean, item_weight_, &row_sse_);
  const double weighted_sse = SumOverRows<double>(
      users_, 0.0, [&](int32_t u) { return user_weight_[u] * row_sse_[u]; });
  const size_t n = by_user_.values().size();
  if (o_.noise_precision <= 0) {
    std::mt19937_64 rng = StreamRng(o_.seed, sweep, kNoise, 0);
    std::gamma_distribution<double> gamma(kGammaShape + 0.5 * n,
                                          1.0 / (kGammaRate + 0.5 * weighted_sse));
    alpha_ = static_cast<float>(gamma(rng));
  }
  double sse = weighted_sse;
  if (o_.item_noise_dof > 0 || o_.user_noise_dof > 0) {
    RowSquaredErrors(by_user_, s_.user_factors, s_.user_bias, s_.item_factors, s_.item_bias,
                     s_.global_mean, Vector::Ones(items_), &row_sse_);
    sse = SumOverRows<double>(users_, 0.0, [&](int32_t u) { return row_sse_[u]; });
  }
  return std::sqrt(sse / n);
}

void Chain::Keep(int sweep, const Hyper& hu, const Hyper& hi, double alpha_used,
                 BpmfSweepStats* stats) {
  const int served = o_.served_samples;
  const float scale = 1.0f / std::sqrt(static_cast<float>(served));
  const int kept = sweep - o_.burn_in;  // 1-based among the kept samples
  m_.user_bias += s_.user_bias;
  m_.item_bias += s_.item_bias;
  // Evenly spaced: kept sample ⌈(j + 1)·samples / served⌉ for j = 0 .. served − 1, so the
  // last kept sample is always served.
  if (next_served_ < served && static_cast<int64_t>(kept) * served >=
                                   static_cast<int64_t>(next_served_ + 1) * o_.samples) {
    m_.user_factors.middleCols(static_cast<int64_t>(next_served_) * k_, k_) =
        s_.user_factors * scale;
    m_.item_factors.middleCols(static_cast<int64_t>(next_served_) * k_, k_) =
        s_.item_factors * scale;
    StorePrior(static_cast<float>(alpha_used), hu, &m_.user_prior, next_served_);
    StorePrior(static_cast<float>(alpha_used), hi, &m_.item_prior, next_served_);
    ++next_served_;
  }
  if (probe_ == nullptr) return;
  tbb::parallel_for(size_t{0}, probe_sum_.size(), [&](size_t r) {
    const int32_t u = probe_->user[r];
    const int32_t i = probe_->item[r];
    double p = s_.global_mean;
    if (u >= 0) p += s_.user_bias[u];
    if (i >= 0) p += s_.item_bias[i];
    if (u >= 0 && i >= 0) p += s_.user_factors.row(u).dot(s_.item_factors.row(i));
    probe_sum_[r] += p;
  });
  stats->probe_rmse = ProbeRmse(
      [&](int32_t r) { return Clamp(probe_sum_[r] / kept, m_.min_value, m_.max_value); });
}

absl::StatusOr<BpmfSweepStats> Chain::Sweep(int sweep) {
  const Timer timer;
  std::mt19937_64 hyper_rng = StreamRng(o_.seed, sweep, kUserHyper, 0);
  const Hyper hu = SampleHyper(s_.user_factors, s_.user_bias, &hyper_rng);
  SampleRows(by_user_, s_.item_factors, s_.item_bias, s_.global_mean, alpha_, user_weight_,
             item_weight_, hu, o_.seed, sweep, kUserRows, &s_.user_factors, &s_.user_bias);
  hyper_rng = StreamRng(o_.seed, sweep, kItemHyper, 0);
  const Hyper hi = SampleHyper(s_.item_factors, s_.item_bias, &hyper_rng);
  SampleRows(by_item_, s_.user_factors, s_.user_bias, s_.global_mean, alpha_, item_weight_,
             user_weight_, hi, o_.seed, sweep, kItemRows, &s_.item_factors, &s_.item_bias);
  if (!s_.user_factors.allFinite() || !s_.item_factors.allFinite()) {
    return absl::InternalError(absl::StrCat("BPMF sampling diverged at sweep ", sweep));
  }
  const double alpha_used = alpha_;  // the α this sweep's rows were drawn with
  BpmfSweepStats stats;
  stats.sweep = sweep;
  stats.burn_in = sweep <= o_.burn_in;
  stats.train_rmse = SampleNoise(sweep);
  stats.alpha = alpha_;
  if (!stats.burn_in) Keep(sweep, hu, hi, alpha_used, &stats);
  stats.seconds = timer.Seconds();
  return stats;
}

BpmfResult Chain::Finish(double chain_seconds) && {
  m_.user_bias /= static_cast<float>(o_.samples);
  m_.item_bias /= static_cast<float>(o_.samples);
  BpmfResult result;
  if (probe_ != nullptr && !probe_sum_.empty()) {
    result.report.probe_rmse_all_samples = ProbeRmse([&](int32_t r) {
      return Clamp(probe_sum_[r] / o_.samples, m_.min_value, m_.max_value);
    });
    result.report.probe_rmse_served =
        ProbeRmse([&](int32_t r) { return m_.PredictRating(probe_->user[r], probe_->item[r]); });
  }
  result.report.seconds = chain_seconds;
  result.model = std::move(m_);
  return result;
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

absl::StatusOr<BpmfResult> TrainBpmf(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                    const BpmfOptions& o, const BpmfRun& run) {
  RETURN_IF_ERROR(ValidateBpmfOptions(o));
  if (by_user.rows() != by_item.cols() || by_user.cols() != by_item.rows() ||
      by_user.nnz() != by_item.nnz()) {
    return absl::InvalidArgumentError("by_item is not the transpose of by_user");
  }
  if (by_user.nnz() == 0) return absl::InvalidArgumentError("no training interactions");
  const BpmfProbe* probe = run.probe;
  if (probe != nullptr &&
      (probe->item.size() != probe->user.size() || probe->value.size() != probe->user.size())) {
    return absl::InvalidArgumentError("probe columns differ in length");
  }
  const Timer chain_timer;
  Chain chain(by_user, by_item, o, probe);
  for (int sweep = 1; sweep <= o.burn_in + o.samples; ++sweep) {
    ASSIGN_OR_RETURN(const BpmfSweepStats stats, chain.Sweep(sweep));
    if (run.on_sweep) run.on_sweep(stats);
  }
  return std::move(chain).Finish(chain_timer.Seconds());
}

}  // namespace recloop
