// Exact top-k selection over a dense score vector, with an exclusion list.
#ifndef RECLOOP_ENGINE_TOP_K_H_
#define RECLOOP_ENGINE_TOP_K_H_

#include <cstdint>
#include <span>
#include <vector>

namespace recloop {

struct ScoredItem {
  int32_t item;
  float score;
  friend bool operator==(const ScoredItem&, const ScoredItem&) = default;
};

// Returns the (at most) k highest-scoring indices of `scores`, best first, skipping the indices
// in `exclude` (sorted ascending). Ties go to the lower index, so results are deterministic.
// NaN scores are never selected. Thread-safe (no shared state).
std::vector<ScoredItem> TopK(std::span<const float> scores, int k,
                             std::span<const int32_t> exclude = {});

}  // namespace recloop

#endif  // RECLOOP_ENGINE_TOP_K_H_
