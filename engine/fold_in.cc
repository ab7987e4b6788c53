#include "engine/fold_in.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "Eigen/Cholesky"
#include "absl/strings/str_cat.h"
#include "engine/cholesky.h"
#include "engine/implicit_cg.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

using Vector = Eigen::VectorXf;
using Matrix = Eigen::MatrixXf;

absl::Status CheckFinite(float v, const char* name) {
  if (!std::isfinite(v) || v < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", name, " must be finite and >= 0, got ", v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FoldIn> FoldIn::Create(const FactorModel& model) {
  if (model.item_factors.size() == 0) {
    return absl::FailedPreconditionError(
        "fold-in needs a factor model; this model has no factors (a popularity model?)");
  }
  const int64_t k = model.item_factors.cols();
  if (model.item_factors.rows() != model.num_items()) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", model.num_items(), " items but ",
                                                   model.item_factors.rows(), " item factor rows"));
  }
  const bool bpmf = model.params.algorithm == Algorithm::kBpmf;
  if (bpmf) {
    const ModelParams& p = model.params;
    const int64_t width = 2 + int64_t{p.factors} + int64_t{p.factors} * p.factors;
    if (p.factors < 1 || p.served_samples < 1 || int64_t{p.factors} * p.served_samples != k ||
        model.user_prior.rows() != p.served_samples || model.user_prior.cols() != width) {
      return absl::InvalidArgumentError(absl::StrCat(
          "BPMF model: ", k, " factor columns and a ", model.user_prior.rows(), "x",
          model.user_prior.cols(), " prior do not match ", p.factors, " factors x ",
          p.served_samples, " served samples"));
    }
    if (!model.user_prior.allFinite()) {
      return absl::InvalidArgumentError("BPMF model: the user prior is not finite");
    }
  } else if (model.params.factors != 0 && model.params.factors != k) {
    return absl::InvalidArgumentError(
        absl::StrCat("model params say ", model.params.factors, " factors, item factors have ", k));
  }
  if (absl::Status s = CheckFinite(model.params.regularization, "regularization"); !s.ok()) {
    return s;
  }
  FoldIn f(model);
  if (bpmf) {
    // Per served sample: the prior precision P0 = diag(Λ, τ) and P0·m0 of [factors, bias].
    const int kk = model.params.factors;
    for (int s = 0; s < model.params.served_samples; ++s) {
      const auto row = model.user_prior.row(s);
      BpmfPrior prior;
      prior.alpha = row[0];
      prior.precision = Matrix::Zero(kk + 1, kk + 1);
      for (int i = 0; i < kk; ++i) {
        prior.precision.row(i).head(kk) = row.segment(2 + kk + i * kk, kk);
      }
      prior.precision(kk, kk) = row[1];
      prior.b = Vector::Zero(kk + 1);
      prior.b.head(kk) = prior.precision.topLeftCorner(kk, kk) * row.segment(2, kk).transpose();
      if (!(prior.alpha > 0) || !(row[1] > 0)) {
        return absl::InvalidArgumentError("BPMF model: a prior precision is not positive");
      }
      f.bpmf_.push_back(std::move(prior));
    }
  }
  if (model.params.feedback == FeedbackKind::kExplicit) {
    if (model.item_bias.size() != model.num_items()) {
      return absl::InvalidArgumentError(
          absl::StrCat("explicit model needs one item bias per item: ", model.item_bias.size(),
                       " biases for ", model.num_items(), " items"));
    }
    if (absl::Status s = CheckFinite(model.params.bias_regularization, "bias_regularization");
        !s.ok()) {
      return s;
    }
    if (!std::isfinite(model.global_mean)) {
      return absl::InvalidArgumentError("model global_mean is not finite");
    }
  } else if (model.params.algorithm != Algorithm::kEase) {  // EASE folds without a solve
    if (absl::Status s = CheckFinite(model.params.alpha, "alpha"); !s.ok()) return s;
    f.gram_ = RegularizedGram(model.item_factors, model.params.regularization);
  }
  return f;
}

absl::Status FoldIn::CheckHistory(std::span<const int32_t> items,
                                  std::span<const float> values) const {
  if (items.size() != values.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fold-in got ", items.size(), " items but ", values.size(), " values"));
  }
  const int32_t num_items = model_->num_items();
  for (size_t j = 0; j < items.size(); ++j) {
    if (items[j] < 0 || items[j] >= num_items) {
      return absl::InvalidArgumentError(absl::StrCat("fold-in item index ", items[j], " (entry ", j,
                                                     ") is outside [0, ", num_items, ")"));
    }
    if (!std::isfinite(values[j])) {
      return absl::InvalidArgumentError(
          absl::StrCat("fold-in value of entry ", j, " (item index ", items[j], ") is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FoldedUser> FoldIn::Fold(std::span<const int32_t> items,
                                        std::span<const float> values,
                                        std::span<const float> start) const {
  if (absl::Status s = CheckHistory(items, values); !s.ok()) return s;
  if (items.empty()) {
    // As in training: a row without data has the zero vector as its penalised optimum.
    FoldedUser u;
    u.factors = Vector::Zero(factors());
    u.cold_start = true;
    return u;
  }
  if (model_->params.algorithm == Algorithm::kBpmf) return FoldBpmf(items, values);
  if (model_->params.algorithm == Algorithm::kEase) {
    // EASE (training/ease.h): the user is their history, +1 liked and -1 disliked.
    FoldedUser u;
    u.factors = Vector::Zero(factors());
    for (size_t j = 0; j < items.size(); ++j) {
      u.factors[items[j]] = PreferenceSign(values[j]);
    }
    return u;
  }
  return model_->params.feedback == FeedbackKind::kExplicit ? FoldExplicit(items, values)
                                                            : FoldImplicit(items, values, start);
}

// For each served sample s: the posterior mean of [p_s, b] given the sample's item factors
// (stored scaled by 1/√S, so multiplied back here) and its prior, the (K+1)-dimensional
// Gaussian conditional that training/bpmf.cc samples rows from. The user's vector is the
// samples' means side by side, scaled as the trained users are; the bias is their average.
// The item biases are the model's (averaged) ones, not each sample's.
absl::StatusOr<FoldedUser> FoldIn::FoldBpmf(std::span<const int32_t> items,
                                            std::span<const float> values) const {
  const FactorMatrix& q = model_->item_factors;
  const int k = model_->params.factors;
  const int served = model_->params.served_samples;
  const float root = std::sqrt(static_cast<float>(served));
  const int64_t n = static_cast<int64_t>(items.size());
  FactorMatrix z(n, k + 1);  // [√S q_s, 1]
  Vector t(n);           // v − μ − b_i
  for (int64_t j = 0; j < n; ++j) {
    t[j] = values[j] - model_->global_mean - model_->item_bias[items[j]];
  }
  FoldedUser u;
  u.factors.resize(q.cols());
  Matrix a;
  Vector b;
  for (int s = 0; s < served; ++s) {
    const BpmfPrior& prior = bpmf_[s];
    for (int64_t j = 0; j < n; ++j) {
      z.row(j).head(k) = q.row(items[j]).segment(int64_t{s} * k, k) * root;
      z(j, k) = 1.0f;
    }
    a = prior.precision;
    a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose(), prior.alpha);
    b = prior.b;
    b.noalias() += prior.alpha * (z.transpose() * t);
    if (!CholeskyInPlace(a)) {
      return absl::InternalError("BPMF fold-in: the posterior precision is not positive definite");
    }
    Vector x = b;
    CholeskySolveInPlace(a, x);
    u.factors.segment(int64_t{s} * k, k) = x.head(k) / root;
    u.bias += x[k] / static_cast<float>(served);
  }
  if (!u.factors.allFinite()) return absl::InternalError("fold-in produced non-finite factors");
  return u;
}

// Mirrors ExplicitHalfStep in training/als.cc line for line (same operation order, float
// arithmetic), so that the result equals the trained row.
absl::StatusOr<FoldedUser> FoldIn::FoldExplicit(std::span<const int32_t> items,
                                                std::span<const float> values) const {
  const FactorMatrix& q = model_->item_factors;
  const Vector& item_bias = model_->item_bias;
  const int k = factors();
  const int64_t n = static_cast<int64_t>(items.size());
  FactorMatrix z(n, k + 1);  // [1, q_i]
  Vector t(n);           // v − μ − b_i
  for (int64_t j = 0; j < n; ++j) {
    const int32_t c = items[j];
    z(j, 0) = 1.0f;
    z.row(j).tail(k) = q.row(c);
    t[j] = values[j] - model_->global_mean - item_bias[c];
  }
  Matrix a = Matrix::Zero(k + 1, k + 1);
  a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose());
  const float nf = static_cast<float>(n);
  a(0, 0) += model_->params.bias_regularization * nf;
  a.diagonal().tail(k).array() += model_->params.regularization * nf;
  Vector b(k + 1);
  b.noalias() = z.transpose() * t;
  if (!CholeskyInPlace(a)) {
    return absl::InternalError(
        "fold-in normal equations are not positive definite (zero regularization with too "
        "short a history?)");
  }
  Vector x = b;
  CholeskySolveInPlace(a, x);
  if (!x.allFinite()) return absl::InternalError("fold-in produced non-finite factors");
  FoldedUser u;
  u.bias = x[0];
  u.factors = x.tail(k);
  return u;
}

bool FoldIn::FoldImplicitCg(std::span<const int32_t> items, std::span<const float> values,
                            std::span<const float> start, Vector* x) const {
  const int k = factors();
  const int64_t n = static_cast<int64_t>(items.size());
  // Scratch kept by the calling thread between folds (a fold thread folds user after user).
  thread_local std::vector<float> z, w, d;
  z.resize(static_cast<size_t>(n * k));
  w.resize(static_cast<size_t>(n));
  d.resize(static_cast<size_t>(n));
  x->resize(k);
  if (static_cast<int>(start.size()) == k &&
      std::all_of(start.begin(), start.end(), [](float v) { return std::isfinite(v); })) {
    std::copy(start.begin(), start.end(), x->data());
  } else {
    x->setZero();
  }
  const FactorModel& m = *model_;
  const auto solve = [&]<int K>() {
    return ImplicitCgRow<K>(items, values, m.item_factors.data(), k, gram_, m.params.alpha,
                            m.params.confidence, /*steps=*/k, kFoldCgTolerance, z.data(), w.data(),
                            d.data(), x->data());
  };
  switch (k) {
    case 16:
      return solve.operator()<16>();
    case 32:
      return solve.operator()<32>();
    case 64:
      return solve.operator()<64>();
    case 128:
      return solve.operator()<128>();
    default:
      return solve.operator()<Eigen::Dynamic>();
  }
}

// A model trained by CG: the same CG to a tight tolerance. Otherwise (or if CG does not reach
// it), mirrors the Cholesky branch of ImplicitHalfStepK in training/als.cc.
absl::StatusOr<FoldedUser> FoldIn::FoldImplicit(std::span<const int32_t> items,
                                                std::span<const float> values,
                                                std::span<const float> start) const {
  const FactorMatrix& y = model_->item_factors;
  const float alpha = model_->params.alpha;
  const int k = factors();
  const int64_t n = static_cast<int64_t>(items.size());
  if (model_->params.cg_steps > 0) {
    FoldedUser u;
    if (FoldImplicitCg(items, values, start, &u.factors)) {
      if (!u.factors.allFinite()) return absl::InternalError("fold-in produced non-finite factors");
      return u;
    }
  }
  // A = YᵀY + λI + Σ (c−1) y yᵀ, b = Σ c p y: rows scaled by sqrt(c−1) for one rank update.
  FactorMatrix z(n, k);
  Vector b = Vector::Zero(k);
  for (int64_t j = 0; j < n; ++j) {
    const float c = 1.0f + alpha * ConfidenceWeight(model_->params.confidence, values[j]);
    z.row(j) = std::sqrt(c - 1.0f) * y.row(items[j]);
    if (values[j] > 0) b.noalias() += c * y.row(items[j]).transpose();
  }
  Matrix a = gram_;
  a.selfadjointView<Eigen::Lower>().rankUpdate(z.transpose());
  if (!CholeskyInPlace(a)) {
    return absl::InternalError("fold-in system is not positive definite (zero regularization?)");
  }
  FoldedUser u;
  CholeskySolveInPlace(a, b);
  u.factors = b;
  if (!u.factors.allFinite()) return absl::InternalError("fold-in produced non-finite factors");
  return u;
}

float FoldIn::Score(const FoldedUser& user, int32_t i) const {
  float s = model_->item_factors.row(i).dot(user.factors);
  if (model_->item_bias.size() > 0) s += model_->item_bias[i];
  return s;
}

float FoldIn::PredictRating(const FoldedUser& user, int32_t i) const {
  float p = model_->item_factors.row(i).dot(user.factors);
  if (model_->params.feedback == FeedbackKind::kExplicit) {
    p += model_->global_mean + user.bias + model_->item_bias[i];
  }
  return std::clamp(p, model_->min_value, model_->max_value);
}

DuplicateRule DuplicateRuleFor(FeedbackKind feedback) {
  return feedback == FeedbackKind::kExplicit ? DuplicateRule::kLast : DuplicateRule::kSum;
}

void FoldHistory::Add(int32_t item, float value) {
  if (positions_stale_) {  // after SortByItem
    position_.clear();
    for (size_t j = 0; j < items_.size(); ++j) position_[items_[j]] = j;
    positions_stale_ = false;
  }
  const auto [it, inserted] = position_.try_emplace(item, items_.size());
  if (inserted) {
    items_.push_back(item);
    values_.push_back(value);
  } else if (rule_ == DuplicateRule::kSum) {
    values_[it->second] += value;
  } else {
    values_[it->second] = value;
  }
}

void FoldHistory::SortByItem() {
  std::vector<std::pair<int32_t, float>> entries(items_.size());
  for (size_t j = 0; j < items_.size(); ++j) entries[j] = {items_[j], values_[j]};
  std::sort(entries.begin(), entries.end());
  for (size_t j = 0; j < entries.size(); ++j) {
    items_[j] = entries[j].first;
    values_[j] = entries[j].second;
  }
  positions_stale_ = true;  // rebuilt by the next Add, if any (a fold adds none after sorting)
}

absl::StatusOr<std::vector<FoldIn::Explanation>> FoldIn::Explain(
    std::span<const int32_t> items, std::span<const float> values,
    std::span<const int32_t> targets) const {
  if (absl::Status s = CheckHistory(items, values); !s.ok()) return s;
  const int32_t num = num_items();
  for (const int32_t t : targets) {
    if (t < 0 || t >= num) {
      return absl::InvalidArgumentError(
          absl::StrCat("explained item index ", t, " is outside [0, ", num, ")"));
    }
  }
  const FactorModel& m = *model_;
  if (m.params.algorithm == Algorithm::kBpmf) {
    return absl::UnimplementedError(
        "BPMF scores are a mean over samples, each with its own prior: they do not split into "
        "one term per history item");
  }
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t targets_n = static_cast<int64_t>(targets.size());
  std::vector<Explanation> out(targets.size());
  for (int64_t t = 0; t < targets_n; ++t) {
    if (m.item_bias.size() > 0) out[t].base = m.item_bias[targets[t]];
    out[t].terms.assign(static_cast<size_t>(n), 0.0f);
  }
  if (n == 0 || targets_n == 0) return out;
  const FactorMatrix& q = m.item_factors;
  if (m.params.algorithm == Algorithm::kEase) {
    // The user's vector is ±1 at their items: item i's score is Σ_j sign_j B(j, i).
    for (int64_t t = 0; t < targets_n; ++t) {
      for (int64_t j = 0; j < n; ++j) {
        out[t].terms[j] = PreferenceSign(values[j]) * q(targets[t], items[j]);
      }
    }
    return out;
  }
  // Both ALS kinds solve A [b,] x = Σ_j r_j z_j. The served score x·q_i (implicit) or
  // b + x·q_i (explicit, beside the base μ + b_i) is then Σ_j r_j z_jᵀ A⁻¹ g_i with g_i = q_i
  // or [1, q_i].
  const bool expl = m.params.feedback == FeedbackKind::kExplicit;
  if (expl) {
    for (int64_t t = 0; t < targets_n; ++t) out[t].base += m.global_mean;
  }
  const int k = factors();
  const int dim = expl ? k + 1 : k;
  // Work matrices kept by the calling thread between calls (a serving thread explains a list
  // per request); the factorisation overwrites A in place.
  thread_local Matrix z, scaled, a, g, shares;
  thread_local Vector r;
  z.resize(dim, n);  // column j: z_j
  r.resize(n);
  if (expl) {
    for (int64_t j = 0; j < n; ++j) {
      z(0, j) = 1.0f;
      z.col(j).tail(k) = q.row(items[j]).transpose();
      r[j] = values[j] - m.global_mean - m.item_bias[items[j]];
    }
    a.setZero(dim, dim);
    a.selfadjointView<Eigen::Lower>().rankUpdate(z);
    const float nf = static_cast<float>(n);
    a(0, 0) += m.params.bias_regularization * nf;
    a.diagonal().tail(k).array() += m.params.regularization * nf;
  } else {
    // As FoldImplicit: A = YᵀY + λI + Σ (c−1) y yᵀ, r_j = c_j p_j, z_j = y_j.
    scaled.resize(k, n);
    for (int64_t j = 0; j < n; ++j) {
      const float c = 1.0f + m.params.alpha * ConfidenceWeight(m.params.confidence, values[j]);
      z.col(j) = q.row(items[j]).transpose();
      scaled.col(j) = std::sqrt(c - 1.0f) * z.col(j);
      r[j] = values[j] > 0 ? c : 0.0f;
    }
    a = gram_;
    a.selfadjointView<Eigen::Lower>().rankUpdate(scaled);
  }
  if (!CholeskyInPlace(a)) {
    return absl::InternalError("fold-in system is not positive definite (zero regularization?)");
  }
  g.resize(dim, targets_n);
  for (int64_t t = 0; t < targets_n; ++t) {
    g.col(t).tail(k) = q.row(targets[t]).transpose();
    if (expl) g(0, t) = 1.0f;
  }
  CholeskySolveInPlace(a, g);            // A⁻¹ g_i, one column per target
  shares.noalias() = z.transpose() * g;  // z_jᵀ A⁻¹ g_i: n × targets
  for (int64_t t = 0; t < targets_n; ++t) {
    for (int64_t j = 0; j < n; ++j) out[t].terms[j] = r[j] * shares(j, t);
  }
  return out;
}

}  // namespace recloop
