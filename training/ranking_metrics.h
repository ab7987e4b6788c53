// Ranking and rating metrics for one user / one list, as plain functions so that each can be
// checked against a hand-computed value. Relevance is binary: an item is relevant if it is in
// the user's test set.
#ifndef RECLOOP_TRAINING_RANKING_METRICS_H_
#define RECLOOP_TRAINING_RANKING_METRICS_H_

#include <cstdint>
#include <span>

namespace recloop {

// `ranked` is the recommendation list, best first (its first k entries are used); `relevant`
// holds the test items, sorted ascending. All return 0 when relevant is empty or k <= 0.

// hits@k / k.
double PrecisionAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);
// hits@k / |relevant|.
double RecallAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);
// DCG@k / IDCG@k with gains 1 and discount 1/log2(rank + 1); IDCG over min(k, |relevant|).
double NdcgAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);
// Average precision at k: sum over hit ranks r <= k of precision@r, / min(k, |relevant|).
double AveragePrecisionAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant,
                           int k);
// 1 if any of the first k is relevant, else 0.
double HitRateAtK(std::span<const int32_t> ranked, std::span<const int32_t> relevant, int k);

// Area under the ROC curve of one user's scores: the fraction of (relevant, irrelevant) pairs
// ordered correctly, ties counting one half. `scores` holds every item's score; items in
// `excluded` (sorted; e.g. the user's training items) are neither relevant nor irrelevant.
// Returns 0.5 when there is no relevant or no irrelevant item.
double Auc(std::span<const float> scores, std::span<const int32_t> relevant,
           std::span<const int32_t> excluded);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_RANKING_METRICS_H_
