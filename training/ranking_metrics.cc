#include "training/ranking_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace recloop {
namespace {

bool IsRelevant(std::span<const int32_t> relevant, int32_t item) {
  return std::binary_search(relevant.begin(), relevant.end(), item);
}

// The part of `ranked` that the metrics at k look at.
std::span<const int32_t> Head(std::span<const int32_t> ranked, int k) {
  return ranked.first(std::min(ranked.size(), static_cast<size_t>(k)));
}

int CountHits(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  int hits = 0;
  for (const int32_t item : Head(ranked, k)) hits += IsRelevant(relevant, item) ? 1 : 0;
  return hits;
}

// Gain of a hit at 1-based rank r.
double Discount(int64_t rank) { return 1.0 / std::log2(static_cast<double>(rank) + 1.0); }

// A total order on float scores in which NaN is below everything (-inf included) and NaNs tie
// with each other: a NaN score means "no opinion", which must not beat any real score, and
// comparisons on raw NaNs would break the strict weak ordering that sorting needs. Widening to
// double leaves room below float's -inf: float -inf becomes -DBL_MAX and NaN becomes -inf.
double AucKey(float score) {
  if (std::isnan(score)) return -std::numeric_limits<double>::infinity();
  if (score == -std::numeric_limits<float>::infinity()) {
    return std::numeric_limits<double>::lowest();
  }
  return static_cast<double>(score);
}

}  // namespace

double PrecisionAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  if (relevant.empty() || k <= 0) return 0.0;
  // Divided by k, not by the list length: a short list is penalised for the slots it left empty.
  return static_cast<double>(CountHits(ranked, relevant, k)) / k;
}

double RecallAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  if (relevant.empty() || k <= 0) return 0.0;
  return static_cast<double>(CountHits(ranked, relevant, k)) / static_cast<double>(relevant.size());
}

double NdcgAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  if (relevant.empty() || k <= 0) return 0.0;
  const std::span<const int32_t> head = Head(ranked, k);
  double dcg = 0.0;
  for (size_t r = 0; r < head.size(); ++r) {
    if (IsRelevant(relevant, head[r])) dcg += Discount(static_cast<int64_t>(r) + 1);
  }
  const int64_t ideal_hits = std::min<int64_t>(k, static_cast<int64_t>(relevant.size()));
  double idcg = 0.0;
  for (int64_t r = 1; r <= ideal_hits; ++r) idcg += Discount(r);
  return dcg / idcg;
}

double AveragePrecisionAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant,
                           int k) {
  if (relevant.empty() || k <= 0) return 0.0;
  const std::span<const int32_t> head = Head(ranked, k);
  double sum = 0.0;
  int hits = 0;
  for (size_t r = 0; r < head.size(); ++r) {
    if (!IsRelevant(relevant, head[r])) continue;
    ++hits;
    sum += static_cast<double>(hits) / static_cast<double>(r + 1);
  }
  // min(k, |relevant|) rather than |relevant|, so that a perfect list scores 1 even when the
  // user has more test items than the list has slots.
  return sum / static_cast<double>(std::min<int64_t>(k, static_cast<int64_t>(relevant.size())));
}

double HitRateAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k) {
  if (relevant.empty() || k <= 0) return 0.0;
  for (const int32_t item : Head(ranked, k)) {
    if (IsRelevant(relevant, item)) return 1.0;
  }
  return 0.0;
}

double Auc(std::span<const float> scores, std::span<const int32_t> relevant,
           std::span<const int32_t> excluded) {
  const int64_t n = static_cast<int64_t>(scores.size());
  // Sorting only the positives' keys and binary-searching each negative in them costs
  // O(n log P + P log P) with one small allocation, instead of sorting all n candidates: the
  // evaluator calls this once per test user over the whole catalogue, and P (the user's test
  // items) is tiny next to n. The count is the same rank statistic (Mann-Whitney U).
  std::vector<double> positive;
  positive.reserve(relevant.size());
  int32_t previous = -1;
  for (const int32_t item : relevant) {
    if (item < 0 || item >= n || item == previous) continue;  // out of range or duplicate
    previous = item;
    if (std::binary_search(excluded.begin(), excluded.end(), item)) continue;
    positive.push_back(AucKey(scores[item]));
  }
  std::sort(positive.begin(), positive.end());
  const int64_t num_positive = static_cast<int64_t>(positive.size());
  if (num_positive == 0) return 0.5;

  // Twice the number of correctly ordered pairs, so that ties (worth one half) stay integral.
  int64_t correct2 = 0;
  int64_t num_negative = 0;
  size_t r = 0;  // cursor into relevant
  size_t e = 0;  // cursor into excluded
  for (int32_t i = 0; i < n; ++i) {
    while (e < excluded.size() && excluded[e] < i) ++e;
    if (e < excluded.size() && excluded[e] == i) continue;
    while (r < relevant.size() && relevant[r] < i) ++r;
    if (r < relevant.size() && relevant[r] == i) continue;
    ++num_negative;
    const double key = AucKey(scores[i]);
    const auto [lo, hi] = std::equal_range(positive.begin(), positive.end(), key);
    const int64_t above = positive.end() - hi;
    const int64_t tied = hi - lo;
    correct2 += 2 * above + tied;
  }
  if (num_negative == 0) return 0.5;
  return static_cast<double>(correct2) /
         (2.0 * static_cast<double>(num_positive) * static_cast<double>(num_negative));
}

}  // namespace recloop
