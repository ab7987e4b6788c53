#include "engine/factor_model.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tbb/parallel_for.h"

namespace recloop {

std::string_view ToString(Algorithm a) {
  switch (a) {
    case Algorithm::kAls:
      return "als";
    case Algorithm::kPopular:
      return "popular";
    case Algorithm::kBpmf:
      return "bpmf";
    case Algorithm::kEase:
      return "ease";
  }
  return "unknown";
}

std::string_view ToString(FeedbackKind f) { return f == FeedbackKind::kExplicit ? "explicit" : "implicit"; }

std::string_view ToString(Confidence c) { return c == Confidence::kLog ? "log" : "linear"; }

absl::StatusOr<Confidence> ParseConfidence(std::string_view s) {
  if (s == "linear") return Confidence::kLinear;
  if (s == "log") return Confidence::kLog;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown confidence '", std::string(s), "' (expected linear or log)"));
}

absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view s) {
  if (s == "als") return Algorithm::kAls;
  if (s == "popular") return Algorithm::kPopular;
  if (s == "bpmf") return Algorithm::kBpmf;
  if (s == "ease") return Algorithm::kEase;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown algorithm '", std::string(s), "' (expected als, bpmf, ease or popular)"));
}

absl::StatusOr<FeedbackKind> ParseFeedbackKind(std::string_view s) {
  if (s == "explicit") return FeedbackKind::kExplicit;
  if (s == "implicit") return FeedbackKind::kImplicit;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown feedback '", std::string(s), "' (expected explicit or implicit)"));
}

float FactorModel::PredictRating(int32_t u, int32_t i) const {
  float p = global_mean;
  if (has_biases()) {
    if (u >= 0) p += user_bias[u];
    if (i >= 0) p += item_bias[i];
  }
  if (has_factors() && u >= 0 && i >= 0) p += user_factors.row(u).dot(item_factors.row(i));
  return std::clamp(p, min_value, max_value);
}

void FactorModel::ScoreItems(int32_t u, std::span<float> out) const {
  const int32_t n = num_items();
  Eigen::Map<Eigen::VectorXf> scores(out.data(), n);
  if (u < 0 || !has_factors()) {
    scores = item_popularity;
    return;
  }
  scores.noalias() = item_factors * user_factors.row(u).transpose();
  if (has_biases()) scores += item_bias;
}

Eigen::MatrixXf RegularizedGram(const FactorMatrix& f, float reg) {
  using Matrix = Eigen::MatrixXf;
  constexpr int64_t kBlock = 4096;
  const int64_t rows = f.rows();
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<Matrix> partial(blocks);
  tbb::parallel_for(int64_t{0}, blocks, [&](int64_t b) {
    const int64_t begin = b * kBlock;
    const int64_t n = std::min(kBlock, rows - begin);
    partial[b] = f.middleRows(begin, n).transpose() * f.middleRows(begin, n);
  });
  Matrix g = Matrix::Identity(f.cols(), f.cols()) * reg;
  for (const auto& p : partial) g += p;
  return g;
}

}  // namespace recloop
