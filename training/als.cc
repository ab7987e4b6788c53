#include "training/als.h"

#include <cmath>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "Eigen/Cholesky"
#include "absl/strings/str_cat.h"
#include "base/hash_mix.h"
#include "base/timer.h"
#include "engine/cholesky.h"
#include "engine/implicit_cg.h"
#include "engine/status_macros.h"
#include "tbb/parallel_for.h"
#include "xxhash.h"

namespace recloop {
namespace {

using Vector = Eigen::VectorXf;
using Matrix = Eigen::MatrixXf;

// Rows per task. Rows differ a lot in length (popular items), so tasks are small and oneTBB
// balances them; results do not depend on the split since every row is solved independently.
constexpr int32_t kRowGrain = 16;

float Regularization(const AlsOptions& o) {
  if (o.regularization >= 0) return o.regularization;
  return o.feedback == FeedbackKind::kExplicit ? kDefaultExplicitRegularization
                                           : kDefaultImplicitRegularization;
}

// Explicit half-step: for every row r of `m` (rows x cols), solves the biased, weighted-λ ridge
// regression of its values on the other side's factors. `solve_bias`/`solve_factors` are the
// row side's unknowns; `other_bias`/`other_factors` are fixed.
void ExplicitHalfStep(const CsrMatrix& m, const FactorMatrix& other_factors,
                      const Vector& other_bias, float global_mean, float reg, float bias_reg,
                      FactorMatrix* factors, Vector* bias) {
  const int k = static_cast<int>(other_factors.cols());
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, m.rows(), kRowGrain), [&](const auto& range) {
    FactorMatrix z;  // n x (k+1): [1, other factors]
    Vector t;    // n targets
    Matrix a(k + 1, k + 1);
    Vector b(k + 1);
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      const auto cols = m.RowIndices(r);
      const auto vals = m.RowValues(r);
      const int64_t n = static_cast<int64_t>(cols.size());
      if (n == 0) {  // no data: the penalised optimum is zero
        factors->row(r).setZero();
        (*bias)[r] = 0.0f;
        continue;
      }
      z.resize(n, k + 1);
      t.resize(n);
      for (int64_t j = 0; j < n; ++j) {
        const int32_t c = cols[j];
        z(j, 0) = 1.0f;
        z.row(j).tail(k) = other_factors.row(c);
        t[j] = vals[j] - global_mean - other_bias[c];
      }
      a.setZero();
      a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose());
      const float nf = static_cast<float>(n);
      a(0, 0) += bias_reg * nf;
      a.diagonal().tail(k).array() += reg * nf;
      b.noalias() = z.transpose() * t;
      CholeskyInPlace(a);  // positive definite: reg > 0 (a zero one was refused before)
      CholeskySolveInPlace(a, b);
      const Vector& x = b;
      (*bias)[r] = x[0];
      factors->row(r) = x.tail(k).transpose();
    }
  });
}

// Implicit half-step (Hu et al. 2008): minimises Σ_j c_j (p_j − x·y_j)² + λ|x|² over all
// columns j for every row, where c = 1 + α|v| and p = [v > 0] on stored entries and c = 1, p = 0
// elsewhere. `gram` = YᵀY + λI of the other side.
template <int K>
void ImplicitHalfStepK(const CsrMatrix& m, const FactorMatrix& y, const Matrix& gram,
                       const AlsOptions& o, FactorMatrix* x_all) {
  const int k = static_cast<int>(y.cols());
  const float alpha = o.alpha;
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, m.rows(), kRowGrain), [&](const auto& range) {
    Vector b(k);
    Matrix a(k, k);
    FactorMatrix z;
    // CG scratch sized for the longest row of this task, allocated once per task.
    int64_t longest = 0;
    for (int32_t row = range.begin(); row != range.end(); ++row) {
      longest = std::max(longest, m.RowSize(row));
    }
    std::vector<float> z_buf, w_buf, d_buf;
    if (!o.cholesky) {
      z_buf.resize(longest * k);
      w_buf.resize(longest);
      d_buf.resize(longest);
    }
    for (int32_t row = range.begin(); row != range.end(); ++row) {
      const auto cols = m.RowIndices(row);
      const auto vals = m.RowValues(row);
      const int64_t n = static_cast<int64_t>(cols.size());
      if (n == 0) {
        x_all->row(row).setZero();
        continue;
      }
      if (!o.cholesky) {
        ImplicitCgRow<K>(cols, vals, y.data(), k, gram, alpha, o.confidence, o.cg_steps,
                         /*tolerance=*/0.0f, z_buf.data(), w_buf.data(), d_buf.data(),
                         x_all->row(row).data());
        continue;
      }
      // A = YᵀY + λI + Σ (c−1) y yᵀ, b = Σ c p y: rows scaled by sqrt(c−1) for one rank update.
      z.resize(n, k);
      b.setZero();
      for (int64_t j = 0; j < n; ++j) {
        const float c = 1.0f + alpha * ConfidenceWeight(o.confidence, vals[j]);
        z.row(j) = std::sqrt(c - 1.0f) * y.row(cols[j]);
        if (vals[j] > 0) b.noalias() += c * y.row(cols[j]).transpose();
      }
      a = gram;
      a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose());
      CholeskyInPlace(a);
      CholeskySolveInPlace(a, b);
      x_all->row(row) = b.transpose();
    }
  });
}

void ImplicitHalfStep(const CsrMatrix& m, const FactorMatrix& y, const Matrix& gram,
                      const AlsOptions& o, FactorMatrix* x_all) {
  switch (y.cols()) {
    case 16:
      return ImplicitHalfStepK<16>(m, y, gram, o, x_all);
    case 32:
      return ImplicitHalfStepK<32>(m, y, gram, o, x_all);
    case 64:
      return ImplicitHalfStepK<64>(m, y, gram, o, x_all);
    case 128:
      return ImplicitHalfStepK<128>(m, y, gram, o, x_all);
    default:
      return ImplicitHalfStepK<Eigen::Dynamic>(m, y, gram, o, x_all);
  }
}

// Sum of per-row terms, added in row order so that it is deterministic.
template <typename RowTerm>
double SumRows(int32_t rows, RowTerm term) {
  std::vector<double> parts(rows);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, rows, 256), [&](const auto& range) {
    for (int32_t r = range.begin(); r != range.end(); ++r) parts[r] = term(r);
  });
  return std::accumulate(parts.begin(), parts.end(), 0.0);
}

double ExplicitSquaredError(const CsrMatrix& by_user, const FactorModel& m) {
  return SumRows(by_user.rows(), [&](int32_t u) {
    const auto cols = by_user.RowIndices(u);
    const auto vals = by_user.RowValues(u);
    double s = 0;
    for (size_t j = 0; j < cols.size(); ++j) {
      const int32_t i = cols[j];
      const double e = vals[j] - (m.global_mean + m.user_bias[u] + m.item_bias[i] +
                                  m.user_factors.row(u).dot(m.item_factors.row(i)));
      s += e * e;
    }
    return s;
  });
}

}  // namespace

uint64_t AlsRowKey(std::string_view external_id) {
  return XXH64(external_id.data(), external_id.size(), 0);
}

void AlsInitialFactors(std::span<const uint64_t> keys, AlsSide side, const AlsOptions& o,
                       FactorMatrix* out) {
  const int k = o.factors;
  out->resize(static_cast<Eigen::Index>(keys.size()), k);
  const float stddev = o.init_scale / std::sqrt(static_cast<float>(k));
  const uint64_t stream = Mix64(o.seed ^ Mix64(side == AlsSide::kUsers ? 1 : 2));
  tbb::parallel_for(tbb::blocked_range<size_t>(0, keys.size(), 256), [&](const auto& range) {
    for (size_t r = range.begin(); r != range.end(); ++r) {
      std::mt19937_64 rng(Mix64(stream ^ keys[r]));
      std::normal_distribution<float> normal(0.0f, stddev);
      for (int j = 0; j < k; ++j) (*out)(static_cast<Eigen::Index>(r), j) = normal(rng);
    }
  });
}

float AlsRegularization(const AlsOptions& o) { return Regularization(o); }

ModelParams AlsModelParams(const AlsOptions& o) {
  ModelParams p;
  p.algorithm = Algorithm::kAls;
  p.feedback = o.feedback;
  p.factors = o.factors;
  p.iterations = o.iterations;
  p.regularization = Regularization(o);
  p.bias_regularization = o.feedback == FeedbackKind::kExplicit ? o.bias_regularization : 0;
  p.alpha = o.feedback == FeedbackKind::kImplicit ? o.alpha : 0;
  p.confidence = o.confidence;
  p.cg_steps = o.feedback == FeedbackKind::kImplicit && !o.cholesky ? o.cg_steps : 0;
  p.cholesky = o.feedback == FeedbackKind::kImplicit && o.cholesky;
  p.seed = o.seed;
  return p;
}

void AlsExplicitHalfStep(const CsrMatrix& m, const FactorMatrix& other,
                         const Eigen::VectorXf& other_bias, float global_mean, const AlsOptions& o,
                         FactorMatrix* factors, Eigen::VectorXf* bias) {
  ExplicitHalfStep(m, other, other_bias, global_mean, Regularization(o), o.bias_regularization,
                   factors, bias);
}

void AlsImplicitHalfStep(const CsrMatrix& m, const FactorMatrix& other, const Eigen::MatrixXf& gram,
                         const AlsOptions& o, FactorMatrix* factors) {
  ImplicitHalfStep(m, other, gram, o, factors);
}

absl::Status ValidateAlsOptions(const AlsOptions& o) {
  if (o.factors < 1 || o.factors > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("factors must be in [1, 4096], got ", o.factors));
  }
  if (o.iterations < 1) {
    return absl::InvalidArgumentError(absl::StrCat("iterations must be >= 1, got ", o.iterations));
  }
  if (!std::isfinite(o.regularization)) {
    return absl::InvalidArgumentError("regularization must be finite");
  }
  if (!(o.bias_regularization >= 0) || !std::isfinite(o.bias_regularization)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bias_regularization must be >= 0, got ", o.bias_regularization));
  }
  if (!(o.alpha > 0) || !std::isfinite(o.alpha)) {
    return absl::InvalidArgumentError(absl::StrCat("alpha must be > 0, got ", o.alpha));
  }
  if (o.cg_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("cg_steps must be >= 1, got ", o.cg_steps));
  }
  if (!(o.init_scale > 0) || !std::isfinite(o.init_scale)) {
    return absl::InvalidArgumentError(absl::StrCat("init_scale must be > 0, got ", o.init_scale));
  }
  return absl::OkStatus();
}

double AlsLoss(const CsrMatrix& by_user, const FactorModel& m, const AlsOptions& o) {
  const float reg = Regularization(o);
  if (o.feedback == FeedbackKind::kExplicit) {
    const CsrMatrix& r = by_user;
    double penalty = SumRows(r.rows(), [&](int32_t u) {
      return static_cast<double>(r.RowSize(u)) *
             (reg * m.user_factors.row(u).squaredNorm() +
              o.bias_regularization * m.user_bias[u] * m.user_bias[u]);
    });
    // Item counts from the user-side matrix (the transpose is not needed for a count).
    std::vector<int64_t> item_count(m.item_factors.rows(), 0);
    for (int32_t c : r.indices()) ++item_count[c];
    for (int64_t i = 0; i < m.item_factors.rows(); ++i) {
      penalty += static_cast<double>(item_count[i]) *
                 (reg * m.item_factors.row(i).squaredNorm() +
                  o.bias_regularization * m.item_bias[i] * m.item_bias[i]);
    }
    return ExplicitSquaredError(by_user, m) + penalty;
  }
  // Implicit: Σ_u [x_uᵀ(YᵀY)x_u + Σ_{i∈I_u} (c(p − s)² − s²)] + λ(Σ|x_u|² + Σ|y_i|²), where
  // s = x_u·y_i: the all-zero-preference term over every item, corrected on the stored entries.
  const Matrix g = RegularizedGram(m.item_factors, 0.0f);
  const double data = SumRows(by_user.rows(), [&](int32_t u) {
    const auto x = m.user_factors.row(u);
    double s = x * g * x.transpose();
    const auto cols = by_user.RowIndices(u);
    const auto vals = by_user.RowValues(u);
    for (size_t j = 0; j < cols.size(); ++j) {
      const double c = 1.0 + o.alpha * ConfidenceWeight(o.confidence, vals[j]);
      const double p = vals[j] > 0 ? 1.0 : 0.0;
      const double d = x.dot(m.item_factors.row(cols[j]));
      s += c * (p - d) * (p - d) - d * d;
    }
    return s;
  });
  return data + reg * (static_cast<double>(m.user_factors.squaredNorm()) +
                       static_cast<double>(m.item_factors.squaredNorm()));
}

absl::StatusOr<AlsTrainer> AlsTrainer::Create(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                              const AlsOptions& o, const AlsRowKeys* keys) {
  if (absl::Status s = ValidateAlsOptions(o); !s.ok()) return s;
  if (by_user.rows() != by_item.cols() || by_user.cols() != by_item.rows() ||
      by_user.nnz() != by_item.nnz()) {
    return absl::InvalidArgumentError("by_item is not the transpose of by_user");
  }
  if (by_user.nnz() == 0) return absl::InvalidArgumentError("no training interactions");
  AlsTrainer t(by_user, by_item, o);
  t.options_.regularization = Regularization(o);
  FactorModel& m = t.model_;
  m.params = AlsModelParams(o);
  m.params.iterations = 0;
  AlsRowKeys by_index;
  if (keys == nullptr) {
    by_index.users.resize(by_user.rows());
    by_index.items.resize(by_item.rows());
    std::iota(by_index.users.begin(), by_index.users.end(), uint64_t{0});
    std::iota(by_index.items.begin(), by_index.items.end(), uint64_t{0});
    keys = &by_index;
  } else if (keys->users.size() != static_cast<size_t>(by_user.rows()) ||
             keys->items.size() != static_cast<size_t>(by_item.rows())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "row keys: ", keys->users.size(), " users and ", keys->items.size(), " items for a ",
        by_user.rows(), " x ", by_item.rows(), " matrix"));
  }
  AlsInitialFactors(keys->users, AlsSide::kUsers, o, &m.user_factors);
  AlsInitialFactors(keys->items, AlsSide::kItems, o, &m.item_factors);
  if (o.feedback == FeedbackKind::kExplicit) {
    const auto& v = by_user.values();
    m.global_mean = static_cast<float>(std::accumulate(v.begin(), v.end(), 0.0) / v.size());
    m.user_bias = Vector::Zero(by_user.rows());
    m.item_bias = Vector::Zero(by_item.rows());
  }
  return t;
}

absl::Status AlsTrainer::WarmStart(const AlsWarmStart& w) {
  FactorModel& m = model_;
  const int k = options_.factors;
  auto copy_rows = [k](const FactorMatrix& from, const std::vector<uint8_t>& known,
                       FactorMatrix* to, const char* side) -> absl::Status {
    if (from.size() == 0) return absl::OkStatus();
    if (from.rows() != to->rows() || from.cols() != k ||
        known.size() != static_cast<size_t>(to->rows())) {
      return absl::InvalidArgumentError(
          absl::StrCat("warm start ", side, " factors are ", from.rows(), "x", from.cols(),
                       ", expected ", to->rows(), "x", k));
    }
    for (Eigen::Index r = 0; r < to->rows(); ++r) {
      if (known[r]) to->row(r) = from.row(r);
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(copy_rows(w.user_factors, w.user_known, &m.user_factors, "user"));
  RETURN_IF_ERROR(copy_rows(w.item_factors, w.item_known, &m.item_factors, "item"));
  if (options_.feedback == FeedbackKind::kExplicit && w.item_bias.size() > 0) {
    if (w.item_bias.size() != m.item_bias.size()) {
      return absl::InvalidArgumentError("warm start item biases have the wrong length");
    }
    for (Eigen::Index r = 0; r < m.item_bias.size(); ++r) {
      if (w.item_known[r]) m.item_bias[r] = w.item_bias[r];
    }
  }
  return absl::OkStatus();
}

absl::Status AlsTrainer::Iterate() {
  const AlsOptions& o = options_;
  FactorModel& m = model_;
  if (o.feedback == FeedbackKind::kExplicit) {
    ExplicitHalfStep(*by_user_, m.item_factors, m.item_bias, m.global_mean, o.regularization,
                     o.bias_regularization, &m.user_factors, &m.user_bias);
    ExplicitHalfStep(*by_item_, m.user_factors, m.user_bias, m.global_mean, o.regularization,
                     o.bias_regularization, &m.item_factors, &m.item_bias);
  } else {
    ImplicitHalfStep(*by_user_, m.item_factors, RegularizedGram(m.item_factors, o.regularization),
                     o, &m.user_factors);
    ImplicitHalfStep(*by_item_, m.user_factors, RegularizedGram(m.user_factors, o.regularization),
                     o, &m.item_factors);
  }
  ++iteration_;
  m.params.iterations = iteration_;
  // A diverged solve shows up as non-finite factors; stop rather than ship it.
  if (!m.user_factors.allFinite() || !m.item_factors.allFinite()) {
    return absl::InternalError(absl::StrCat("ALS diverged at iteration ", iteration_,
                                            " (non-finite factors); raise regularization"));
  }
  return absl::OkStatus();
}

double AlsTrainer::Loss() const { return AlsLoss(*by_user_, model_, options_); }

double AlsTrainer::TrainRmse() const {
  if (options_.feedback != FeedbackKind::kExplicit) return 0.0;
  return std::sqrt(ExplicitSquaredError(*by_user_, model_) / by_user_->nnz());
}

absl::StatusOr<AlsResult> TrainAls(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                   const AlsOptions& o, const AlsRun& run) {
  ASSIGN_OR_RETURN(AlsTrainer trainer, AlsTrainer::Create(by_user, by_item, o, run.keys));
  if (run.warm != nullptr) RETURN_IF_ERROR(trainer.WarmStart(*run.warm));
  for (int it = 1; it <= o.iterations; ++it) {
    const Timer timer;
    RETURN_IF_ERROR(trainer.Iterate());
    if (run.on_iteration) {
      IterationStats stats;
      stats.iteration = it;
      stats.seconds = timer.Seconds();
      stats.loss = trainer.Loss();
      stats.train_rmse = trainer.TrainRmse();
      run.on_iteration(stats);
    }
  }
  return AlsResult{std::move(trainer).TakeModel()};
}

}  // namespace recloop
