// Cholesky solves of the small symmetric positive definite systems that fold-in, its
// explanations and the ALS half-steps solve per user (K or K + 1 unknowns, K typically 16-128).
//
// Eigen's LLT factorises in blocks (of 16 columns at K = 64), updating the trailing blocks with
// GEMM calls whose setup dominates at small sizes; its unblocked kernel (which LLT runs on each
// diagonal block) is faster up to about K = 96 and slower beyond (BM_SmallCholesky in
// bench/query_bench, factorisation and one solve: 2.40 against 3.39 µs at K = 32, 10.4 against
// 12.1 at K = 64, 53.6 against 43.4 at K = 128). So small systems use that kernel on the whole
// matrix, larger ones LLT. Training and fold-in share these, so that a folded user still equals
// their trained row.
#ifndef RECLOOP_ENGINE_CHOLESKY_H_
#define RECLOOP_ENGINE_CHOLESKY_H_

#include "Eigen/Cholesky"
#include "Eigen/Core"

namespace recloop {

// Factorises `a` = L Lᵀ in place: L in the lower triangle (the upper one is not read or
// written). Returns false if `a` is not positive definite (to working precision).
inline bool CholeskyInPlace(Eigen::Ref<Eigen::MatrixXf> a) {
  constexpr Eigen::Index kLargestUnblocked = 96;
  if (a.rows() <= kLargestUnblocked) {
    return Eigen::internal::llt_inplace<float, Eigen::Lower>::unblocked(a) < 0;
  }
  const Eigen::LLT<Eigen::Ref<Eigen::MatrixXf>, Eigen::Lower> llt(a);  // factorises `a` itself
  return llt.info() == Eigen::Success;
}

// Solves L Lᵀ x = b in place, with L from CholeskyInPlace; `b` is a vector or a matrix of
// right-hand sides.
template <typename Rhs>
void CholeskySolveInPlace(const Eigen::MatrixXf& l, Rhs&& b) {
  l.triangularView<Eigen::Lower>().solveInPlace(b);
  l.triangularView<Eigen::Lower>().transpose().solveInPlace(b);
}

}  // namespace recloop

#endif  // RECLOOP_ENGINE_CHOLESKY_H_
