// How `--index auto` chooses between exact search and HNSW: by measuring. Above
// ItemIndexOptions::hnsw_min_items items it builds the HNSW graphs, then asks them and an exact
// index for the top 10 of a sample of the model's own users and takes the smallest beam
// (efSearch 32, 64, ..., 512) whose recall@10 reaches options.auto_min_recall. HNSW is kept only
// when such a beam exists and would score clearly fewer items than exact search does
// (beam * M * kHnswCostPerVisit < items: a visited node costs about three times an exact
// search's per-item inner product, from the measured 20 ns per item against ~57 ns per beam x M
// unit at K = 64, BENCHMARKS.md); else the index is exact.
#ifndef RECLOOP_ENGINE_INDEX_CALIBRATION_H_
#define RECLOOP_ENGINE_INDEX_CALIBRATION_H_

#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/item_index.h"

namespace recloop {

inline constexpr int kCalibrationQueries = 500;  // users sampled, evenly spaced
inline constexpr int kCalibrationK = 10;
inline constexpr int kCalibrationMaxBeam = 512;
inline constexpr double kHnswCostPerVisit = 3.0;

// The recall@k of `index` against `exact` over `queries` (n rows of index.dim() floats) at beam
// `ef`: the share of exact's top k that the index also returns, pooled over the queries.
absl::StatusOr<double> MeasureRecall(const ItemIndex& index, const ItemIndex& exact,
                                     const float* queries, int64_t n, int k, int ef);

// The kAuto build of ItemIndex::Build for a catalogue of at least options.hnsw_min_items items
// (see the top of this file). The chosen index's default beam is the calibrated one and its
// measured_recall() the recall that beam reached. Errors: Build's.
absl::StatusOr<ItemIndex> BuildCalibratedIndex(const FactorModel& model,
                                               const ItemIndexOptions& options);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_INDEX_CALIBRATION_H_
