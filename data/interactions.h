// Interactions: a list of (user, item, value, timestamp) events with the ID maps that give the
// dense indices meaning. Stored column-wise (struct of arrays): 20 bytes per interaction.
#ifndef RECLOOP_DATA_INTERACTIONS_H_
#define RECLOOP_DATA_INTERACTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/id_map.h"

namespace recloop {

// What happens to several interactions of one user with one item.
enum class DuplicatePolicy {
  kLast,   // keep the latest one (largest timestamp; on equal timestamps the later row)
  kSum,    // one interaction whose value is the sum and whose timestamp is the latest
  kError,  // reading fails, naming the pair
};

absl::StatusOr<DuplicatePolicy> ParseDuplicatePolicy(std::string_view s);

// Plain data. Not thread-safe for writes.
struct Interactions {
  IdMap users;
  IdMap items;
  std::vector<int32_t> user;       // index into users
  std::vector<int32_t> item;       // index into items
  std::vector<float> value;        // rating, count or event weight (finite)
  std::vector<int64_t> timestamp;  // seconds since the epoch; 0 where the source has none
  bool has_timestamps = false;     // true if the source file had a timestamp column

  int64_t size() const { return static_cast<int64_t>(user.size()); }
  bool empty() const { return user.empty(); }
  void Reserve(size_t n);
  void Add(int32_t u, int32_t i, float v, int64_t ts);

  // Sorts by (user, item) and merges duplicate (user, item) pairs by `policy`. Returns the
  // number of rows merged away, or InvalidArgument naming the first duplicate pair for kError.
  absl::StatusOr<int64_t> Deduplicate(DuplicatePolicy policy);

  // Renumbers users and items so that only IDs that occur in this list remain, in order of
  // first use. Used after a split so that a model knows only what it was trained on.
  void Compact();

  // Returns a copy of the rows selected by `rows` (indices into this list), sharing the ID maps.
  Interactions Subset(const std::vector<int64_t>& rows) const;

  // CSR users x items of the values (call Deduplicate first: duplicates become separate entries).
  CsrMatrix ToUserItemMatrix() const;
};

// Summary of a read (for `--skip-bad-rows` reports and --json output).
struct ReadStats {
  int64_t rows_read = 0;       // data rows accepted
  int64_t rows_skipped = 0;    // malformed rows skipped under skip_bad_rows
  int64_t duplicates_merged = 0;
  std::string first_skipped;   // "FILE:LINE: reason" of the first skipped row, if any
};

}  // namespace recloop

#endif  // RECLOOP_DATA_INTERACTIONS_H_
