// The partition of the distributed trainer (internal to training/distributed_*.cc): which
// process owns an ID (by hash), the global numbering of IDs, and interactions on their way to
// the owners of their users or items (merged across byte ranges by the duplicate policy).
// Functions taking a Comm are collectives (distributed_comm.h); the rest are pure.
#ifndef RECLOOP_TRAINING_DISTRIBUTED_PARTITION_H_
#define RECLOOP_TRAINING_DISTRIBUTED_PARTITION_H_

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/csr_matrix.h"
#include "engine/id_map.h"
#include "tbb/parallel_sort.h"
#include "training/als.h"
#include "training/distributed_comm.h"

namespace recloop::distributed_internal {

// ---------------------------------------------------------------------------------------------
// IDs and ownership.

inline int HashOwner(std::string_view id, int ranks) {
  return static_cast<int>(AlsRowKey(id) % static_cast<uint64_t>(ranks));
}

// One side (users or items) of the partition: process p owns the global indices
// [offsets[p], offsets[p + 1]).
struct Side {
  std::vector<int64_t> offsets;       // ranks + 1
  std::vector<std::string> ids;       // this process's IDs, in global index order
  absl::flat_hash_map<std::string, int32_t> index;  // this process's ID -> global index

  int32_t begin(int rank) const { return static_cast<int32_t>(offsets[rank]); }
  int32_t count(int rank) const { return static_cast<int32_t>(offsets[rank + 1] - offsets[rank]); }
  int32_t total() const { return static_cast<int32_t>(offsets.back()); }
  int OwnerOf(int32_t global) const {
    return static_cast<int>(std::upper_bound(offsets.begin(), offsets.end(), global) -
                            offsets.begin()) -
           1;
  }
};

// Numbers the IDs of every process's `local` map: the owner (by hash) of each ID sorts its IDs
// and places them after the IDs of lower ranks. Fills `side` and returns the global index of
// each local index.
absl::StatusOr<std::vector<int32_t>> NumberIds(const Comm& comm, const IdMap& local, Side* side,
                                               std::string_view what);

// The global index of each index of `local` (-1 for IDs no process owns), asking the owners.
std::vector<int32_t> LookUpIds(const Comm& comm, const IdMap& local, const Side& side);

// ---------------------------------------------------------------------------------------------
// Interactions on the move. Rows of one (user, item) pair from several ranges are merged by
// the duplicate policy, as ReadInteractions merges them within a file: ranges are in file
// order, so the row of the higher source rank is the later one.

struct Row {
  int32_t user = 0;  // global index
  int32_t item = 0;
  float value = 0;
  int32_t source = 0;  // the rank whose range the row came from
  int64_t timestamp = 0;
};

// Sorts by (user, item, source) and merges duplicate pairs. Returns the rows merged away, or
// InvalidArgument from `describe(row)` for kError.
template <typename R, typename Key, typename Describe>
absl::StatusOr<int64_t> MergeDuplicates(std::vector<R>* rows, DuplicatePolicy policy, Key key,
                                        Describe describe) {
  tbb::parallel_sort(rows->begin(), rows->end(), [&](const R& a, const R& b) {
    const auto ka = key(a), kb = key(b);
    if (ka != kb) return ka < kb;
    return a.source < b.source;
  });
  size_t out = 0;
  int64_t merged = 0;
  for (size_t p = 0; p < rows->size();) {
    size_t q = p + 1;
    while (q < rows->size() && key((*rows)[q]) == key((*rows)[p])) ++q;
    R r = (*rows)[q - 1];  // the later row
    if (q - p > 1) {
      if (policy == DuplicatePolicy::kError) {
        return absl::InvalidArgumentError(describe((*rows)[p]));
      }
      int64_t latest = (*rows)[p].timestamp;
      size_t latest_at = p;
      double sum = 0;
      for (size_t k = p; k < q; ++k) {
        sum += (*rows)[k].value;
        if ((*rows)[k].timestamp >= latest) {
          latest = (*rows)[k].timestamp;
          latest_at = k;
        }
      }
      if (policy == DuplicatePolicy::kSum) {
        r.value = static_cast<float>(sum);
        r.timestamp = latest;
      } else {
        r = (*rows)[latest_at];
      }
      merged += static_cast<int64_t>(q - p - 1);
    }
    (*rows)[out++] = r;
    p = q;
  }
  rows->resize(out);
  return merged;
}

// Rows (sorted by row index, then column) as a CSR matrix of `num_rows` rows starting at global
// row `first_row`, columns as given.
template <typename R, typename RowOf, typename ColOf>
CsrMatrix ToCsr(const std::vector<R>& rows, int32_t first_row, int32_t num_rows, int32_t num_cols,
                RowOf row_of, ColOf col_of) {
  std::vector<int64_t> indptr(static_cast<size_t>(num_rows) + 1, 0);
  std::vector<int32_t> indices(rows.size());
  std::vector<float> values(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    ++indptr[row_of(rows[k]) - first_row + 1];
    indices[k] = col_of(rows[k]);
    values[k] = rows[k].value;
  }
  std::partial_sum(indptr.begin(), indptr.end(), indptr.begin());
  return CsrMatrix::FromArrays(num_rows, num_cols, std::move(indptr), std::move(indices),
                               std::move(values));
}

// A test row on its way to the owner of its user (by hash, known to the model or not).
struct TestRow {
  uint64_t user_key = 0;  // AlsRowKey of the external IDs
  uint64_t item_key = 0;
  int32_t user = -1;      // global index, -1 if the model does not know it
  int32_t item = -1;
  float value = 0;
  int32_t source = 0;
  int64_t timestamp = 0;
};

}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_PARTITION_H_
