// Train/test splits of an interaction list, all seeded and reproducible.
//  random:F     a uniformly random fraction F of all interactions goes to test
//  user:F       a random fraction F of each user's interactions (rounded; a user always keeps at
//               least one interaction in train, and one with two or more gives at least one to
//               test)
//  user-last:N  each user's N latest interactions by timestamp (ties by row order); users with
//               N or fewer interactions keep one in train
//  time:F       the globally latest fraction F by timestamp (ties by row order)
// random and time take round(F * n) rows; on tiny inputs that can leave train empty, which
// training then reports as an error.
#ifndef RECLOOP_DATA_SPLIT_H_
#define RECLOOP_DATA_SPLIT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/interactions.h"

namespace recloop {

struct SplitSpec {
  enum class Kind { kRandom, kUser, kUserLast, kTime };
  Kind kind = Kind::kRandom;
  double fraction = 0.2;  // random, user, time: in (0, 1)
  int count = 1;          // user-last: >= 1
};

// Parses "random:F", "user:F", "user-last:N" or "time:F"; the error says what is wrong.
absl::StatusOr<SplitSpec> ParseSplitSpec(std::string_view spec);

struct SplitResult {
  Interactions train;  // compacted: its ID maps hold only IDs it uses
  Interactions test;   // keeps the full ID maps of the input
};

// Splits `data` (deduplicated) by `spec`. Deterministic for a seed, whatever the thread count.
// time and user-last need timestamps: without them they return InvalidArgument.
absl::StatusOr<SplitResult> Split(const Interactions& data, const SplitSpec& spec, uint64_t seed);

}  // namespace recloop

#endif  // RECLOOP_DATA_SPLIT_H_
