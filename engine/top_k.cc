#include "engine/top_k.h"

#include <algorithm>
#include <cmath>

namespace recloop {
namespace {

// Strict weak order: higher score first, then lower index.
bool Better(const ScoredItem& a, const ScoredItem& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

}  // namespace

std::vector<ScoredItem> TopK(std::span<const float> scores, int k,
                             std::span<const int32_t> exclude) {
  std::vector<ScoredItem> heap;  // min-heap on Better: heap.front() is the worst kept
  if (k <= 0) return heap;
  heap.reserve(k + 1);
  size_t e = 0;
  const int32_t n = static_cast<int32_t>(scores.size());
  for (int32_t i = 0; i < n; ++i) {
    while (e < exclude.size() && exclude[e] < i) ++e;
    if (e < exclude.size() && exclude[e] == i) continue;
    const float s = scores[i];
    if (std::isnan(s)) continue;
    ScoredItem cand{i, s};
    if (static_cast<int>(heap.size()) < k) {
      heap.push_back(cand);
      std::push_heap(heap.begin(), heap.end(), Better);
    } else if (Better(cand, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), Better);
      heap.back() = cand;
      std::push_heap(heap.begin(), heap.end(), Better);
    }
  }
  std::sort(heap.begin(), heap.end(), Better);
  return heap;
}

}  // namespace recloop
