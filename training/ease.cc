#include "training/ease.h"

#include <cmath>
#include <string>

#include "Eigen/Cholesky"
#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

using Matrix = Eigen::MatrixXf;  // column-major: the solver's layout

// G = XᵀX with X the consumption matrix (1 wherever a preference was stored, liked or
// disliked): the item-item structure comes from what customers took up, whatever they thought
// of it, and what they thought decides only the sign of their history entry when scoring. A
// signed G (liked x disliked co-occurrences negative) ranked worse on ML-100K u1 (NDCG@10 0.515
// against 0.525 at lambda 1000: BENCHMARKS.md, "Ranking first"). Column i of G (= row i, G is
// symmetric) is Σ over the users u of item i of x_ui · x_u: each task owns whole columns, so no
// two write the same entry and the sums run in a fixed order.
Matrix Gram(const CsrMatrix& by_user, const CsrMatrix& by_item) {
  const int32_t n = by_item.rows();
  Matrix g = Matrix::Zero(n, n);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, n, 16), [&](const auto& range) {
    for (int32_t i = range.begin(); i != range.end(); ++i) {
      float* col = g.col(i).data();
      const auto users = by_item.RowIndices(i);
      const auto user_values = by_item.RowValues(i);
      for (size_t a = 0; a < users.size(); ++a) {
        if (PreferenceSign(user_values[a]) == 0) continue;
        const auto items = by_user.RowIndices(users[a]);
        const auto values = by_user.RowValues(users[a]);
        for (size_t b = 0; b < items.size(); ++b) col[items[b]] += std::fabs(PreferenceSign(values[b]));
      }
    }
  });
  return g;
}

}  // namespace

absl::Status ValidateEaseOptions(const EaseOptions& o) {
  if (!(o.regularization > 0) || !std::isfinite(o.regularization)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ease regularization must be > 0, got ", o.regularization));
  }
  if (o.max_items < 1) {
    return absl::InvalidArgumentError(absl::StrCat("ease max_items must be >= 1, got ", o.max_items));
  }
  return absl::OkStatus();
}

absl::StatusOr<FactorModel> TrainEase(const CsrMatrix& by_user, const CsrMatrix& by_item,
                                      const EaseOptions& options) {
  if (absl::Status s = ValidateEaseOptions(options); !s.ok()) return s;
  const int32_t n = by_item.rows();
  if (n > options.max_items) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ease: ", n, " items is more than its cap of ", options.max_items,
        " (it holds two items x items matrices while training): use als"));
  }
  if (by_user.cols() != n || by_item.cols() != by_user.rows()) {
    return absl::InvalidArgumentError("ease: by_item is not the transpose of by_user");
  }
  Matrix p = Gram(by_user, by_item);
  p.diagonal().array() += options.regularization;
  Eigen::LLT<Matrix, Eigen::Lower> llt(p);
  if (llt.info() != Eigen::Success) {
    return absl::InternalError("ease: G + lambda I is not positive definite");
  }
  p = llt.solve(Matrix::Identity(n, n));  // P = (G + λI)⁻¹, symmetric
  FactorModel m;
  m.params.algorithm = Algorithm::kEase;
  m.params.feedback = FeedbackKind::kImplicit;
  m.params.factors = n;
  m.params.regularization = options.regularization;
  // Item j's vector is column j of B: B_ij = -P_ij / P_jj off the diagonal, 0 on it.
  m.item_factors.resize(n, n);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, n, 64), [&](const auto& range) {
    for (int32_t j = range.begin(); j != range.end(); ++j) {
      m.item_factors.row(j) = p.col(j).transpose() * (-1.0f / p(j, j));
      m.item_factors(j, j) = 0.0f;
    }
  });
  if (!m.item_factors.allFinite()) return absl::InternalError("ease: B is not finite");
  m.user_factors.setZero(by_user.rows(), n);
  for (int32_t u = 0; u < by_user.rows(); ++u) {
    const auto items = by_user.RowIndices(u);
    const auto values = by_user.RowValues(u);
    for (size_t j = 0; j < items.size(); ++j) {
      m.user_factors(u, items[j]) = PreferenceSign(values[j]);
    }
  }
  return m;
}

}  // namespace recloop
