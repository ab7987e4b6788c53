// The conjugate-gradient solve of one implicit-feedback row (Takács, Pilászy & Tikk 2011):
//   (YᵀY + λI + Σ_j (c_j − 1) y_j y_jᵀ) x = Σ_j c_j p_j y_j,  c = 1 + α·w(v), p = [v > 0],
// warm-started from x. Training's implicit half-step runs a fixed number of steps per row and
// iteration (training/als.cc); fold-in (engine/fold_in.h) runs it from the user's current vector
// until the residual is small. One kernel, so both solve the same system the same way.
#ifndef RECLOOP_ENGINE_IMPLICIT_CG_H_
#define RECLOOP_ENGINE_IMPLICIT_CG_H_

#include <cstdint>
#include <span>

#include "Eigen/Core"
#include "engine/factor_model.h"

namespace recloop {

// Solves the row's system by at most `steps` CG steps from x_out (k floats, the warm start; the
// solution is written back). Stops early once |r|² <= tolerance² · |b|² (tolerance 0: only at an
// exactly zero residual). The row's factor rows are gathered once into `z` (n × k, contiguous;
// prefetched, since the hardware cannot guess an indirect access); every later pass then streams
// through z, which is what makes long rows (popular items, whose rows do not stay in cache)
// cheap. A is never formed: A·v = gram·v + zᵀ(w ∘ z v) with w = c − 1 = α·w(v). `gram` is
// YᵀY + λI (k × k, column-major); z_buf, w_buf and d_buf hold n·k, n and n floats. K is k at
// compile time for the common factor counts, else Eigen::Dynamic. Returns true if the tolerance
// was met (always true for tolerance 0).
template <int K>
bool ImplicitCgRow(std::span<const int32_t> cols, std::span<const float> vals, const float* y,
                   int k, const Eigen::MatrixXf& gram, float alpha, Confidence confidence,
                   int steps, float tolerance, float* z_buf, float* w_buf, float* d_buf,
                   float* x_out) {
  using Vec = Eigen::Matrix<float, K, 1>;
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, K, Eigen::RowMajor>;
  const int64_t n = static_cast<int64_t>(cols.size());
  Eigen::Map<Rows> z(z_buf, n, k);
  Eigen::Map<Eigen::VectorXf> w(w_buf, n);
  Eigen::Map<Eigen::VectorXf> d(d_buf, n);
  constexpr int64_t kAhead = 6;
  for (int64_t j = 0; j < n; ++j) {
    if (j + kAhead < n) {
      const char* next = reinterpret_cast<const char*>(y + int64_t{cols[j + kAhead]} * k);
      for (int line = 0; line < k * static_cast<int>(sizeof(float)); line += 64) {
        __builtin_prefetch(next + line);
      }
    }
    z.row(j) = Eigen::Map<const Eigen::Matrix<float, 1, K>>(y + int64_t{cols[j]} * k, k);
    w[j] = alpha * ConfidenceWeight(confidence, vals[j]);
  }
  Eigen::Map<const Eigen::Matrix<float, K, K>> g(gram.data(), k, k);
  Eigen::Map<Vec> x_map(x_out, k);
  Vec x = x_map;
  // The stopping bound, tolerance² · |b|² with b = Σ c·[v > 0]·y (computed only when used).
  float bound = 0.0f;
  if (tolerance > 0) {
    for (int64_t j = 0; j < n; ++j) d[j] = vals[j] > 0 ? 1.0f + w[j] : 0.0f;
    const Vec b = z.transpose() * d;
    bound = tolerance * tolerance * b.squaredNorm();
  }
  // r = b − A x.
  d.noalias() = z * x;
  for (int64_t j = 0; j < n; ++j) {
    d[j] = (vals[j] > 0 ? 1.0f + w[j] : 0.0f) - w[j] * d[j];
  }
  Vec r = -(g * x);
  r.noalias() += z.transpose() * d;
  Vec p = r;
  Vec ap(k);
  float rs_old = r.squaredNorm();
  for (int step = 0; step < steps; ++step) {
    if (rs_old < 1e-20f || rs_old <= bound) break;
    d.noalias() = z * p;
    d.array() *= w.array();
    ap.noalias() = g * p;
    ap.noalias() += z.transpose() * d;
    const float step_size = rs_old / p.dot(ap);
    x.noalias() += step_size * p;
    r.noalias() -= step_size * ap;
    const float rs_new = r.squaredNorm();
    p = r + (rs_new / rs_old) * p;
    rs_old = rs_new;
  }
  x_map = x;
  return tolerance <= 0 || rs_old < 1e-20f || rs_old <= bound;
}

}  // namespace recloop

#endif  // RECLOOP_ENGINE_IMPLICIT_CG_H_
