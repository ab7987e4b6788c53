#include "engine/index_calibration.h"

#include <algorithm>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"

namespace recloop {

absl::StatusOr<double> MeasureRecall(const ItemIndex& index, const ItemIndex& exact,
                                     const float* queries, int64_t n, int k, int ef) {
  if (n < 1) return absl::InvalidArgumentError("recall needs at least one query");
  std::vector<float> scores(static_cast<size_t>(n) * k);
  std::vector<int64_t> truth(scores.size()), found(scores.size());
  ItemSearchParams params;
  params.omp_threads = 0;  // a batch job: every core
  if (absl::Status s = exact.Search(n, queries, k, scores.data(), truth.data(), params); !s.ok()) {
    return s;
  }
  params.ef_search = ef;
  if (absl::Status s = index.Search(n, queries, k, scores.data(), found.data(), params); !s.ok()) {
    return s;
  }
  int64_t relevant = 0, hits = 0;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t* want = truth.data() + q * k;
    const int64_t* got = found.data() + q * k;
    absl::flat_hash_set<int64_t> returned(got, got + k);
    for (int j = 0; j < k; ++j) {
      if (want[j] < 0) continue;
      ++relevant;
      hits += returned.contains(want[j]) ? 1 : 0;
    }
  }
  return relevant == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(relevant);
}

absl::StatusOr<ItemIndex> BuildCalibratedIndex(const FactorModel& model,
                                               const ItemIndexOptions& options) {
  ItemIndexOptions exact_options = options;
  exact_options.type = IndexType::kExact;
  auto exact = ItemIndex::Build(model, exact_options);
  if (!exact.ok()) return exact.status();
  const int64_t items = exact->num_items();
  const int64_t users = model.user_factors.rows();
  // Even the narrowest beam would score about as many items as exact search: keep exact.
  if (32.0 * options.hnsw_m * kHnswCostPerVisit >= static_cast<double>(items) || users == 0) {
    return exact;
  }
  ItemIndexOptions hnsw_options = options;
  hnsw_options.type = IndexType::kHnsw;
  auto hnsw = ItemIndex::Build(model, hnsw_options);
  if (!hnsw.ok()) return hnsw.status();

  const int64_t n = std::min<int64_t>(kCalibrationQueries, users);
  const int dim = exact->dim();
  std::vector<float> queries(static_cast<size_t>(n) * dim);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t u = q * users / n;  // evenly spaced: deterministic, and no id order bias
    exact->MakeQuery({model.user_factors.row(u).data(), static_cast<size_t>(exact->factors())},
                     {queries.data() + q * dim, static_cast<size_t>(dim)});
  }
  const int k = static_cast<int>(std::min<int64_t>(kCalibrationK, items));
  for (int ef = 32; ef <= kCalibrationMaxBeam; ef *= 2) {
    if (ef * options.hnsw_m * kHnswCostPerVisit >= static_cast<double>(items)) break;
    auto recall = MeasureRecall(*hnsw, *exact, queries.data(), n, k, ef);
    if (!recall.ok()) return recall.status();
    if (*recall >= options.auto_min_recall) {
      hnsw->SetDefaultEfSearch(ef, *recall);
      return hnsw;
    }
  }
  return exact;  // no beam HNSW can afford reaches the recall: exact search
}

}  // namespace recloop
