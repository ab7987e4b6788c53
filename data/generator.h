// The synthetic store generator: users, items and interactions with power-law item popularity
// and a planted low-rank taste structure (clusters), for tests and for benchmarks at scale.
#ifndef RECLOOP_DATA_GENERATOR_H_
#define RECLOOP_DATA_GENERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/factor_model.h"

namespace recloop {

struct GeneratorOptions {
  int32_t users = 10000;          // > 0
  int32_t items = 2000;           // > 0
  // >= users (every user gets at least one) and at most users * ceil(items / 2) (no user
  // interacts with more than half the catalogue).
  int64_t interactions = 200000;
  int clusters = 10;              // planted taste clusters, 1..items
  int rank = 8;                   // rank of the planted taste structure, >= 1
  double zipf_exponent = 1.0;     // item popularity ~ 1 / rank^s, s >= 0
  double in_cluster = 0.8;        // probability an interaction is drawn from the user's cluster
  FeedbackKind feedback = FeedbackKind::kExplicit;  // explicit: ratings 1..5; implicit: counts >= 1
  double noise = 0.3;             // std-dev of rating noise (explicit)
  uint64_t seed = 42;
};

absl::Status ValidateGeneratorOptions(const GeneratorOptions& options);

struct GeneratedStore {
  Interactions data;                 // users named "u<N>", items "i<N>"; timestamps increase
  std::vector<int32_t> user_cluster;  // per user index
  std::vector<int32_t> item_cluster;  // per item index
};

// Generates a store. Deterministic for a seed, whatever the thread count; parallel (oneTBB).
absl::StatusOr<GeneratedStore> GenerateStore(const GeneratorOptions& options);

// Display names for a generated store (the demo's catalogue): each planted cluster is a
// department ("Kitchen"; clusters past the named ones are "Department N"), each item an adjective
// and one of its department's nouns ("Copper Teapot"). Deterministic in (item index, cluster).
std::string GeneratedDepartment(int32_t cluster);
std::string GeneratedItemTitle(int32_t item, int32_t cluster);

}  // namespace recloop

#endif  // RECLOOP_DATA_GENERATOR_H_
