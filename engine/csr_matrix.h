// CsrMatrix: a compressed-sparse-row matrix of float interactions (users x items or items x
// users). Row-major, columns sorted ascending within each row. 8 bytes per stored entry plus
// 8 bytes per row.
#ifndef RECLOOP_ENGINE_CSR_MATRIX_H_
#define RECLOOP_ENGINE_CSR_MATRIX_H_

#include <cstdint>
#include <span>
#include <vector>

namespace recloop {

// Immutable after construction; concurrent const calls are safe.
class CsrMatrix {
 public:
  CsrMatrix() : indptr_(1, 0) {}

  // Builds a rows x cols matrix from n triplets (row[k], col[k], value[k]), each array of size n.
  // Entries are bucketed by row in parallel (oneTBB) and each row is sorted by column, so the
  // result does not depend on the input order or the thread count. Duplicate (row, col) pairs
  // are kept as separate entries: callers deduplicate first (data/interactions.h).
  // Requires 0 <= row[k] < rows and 0 <= col[k] < cols.
  static CsrMatrix FromTriplets(int32_t rows, int32_t cols, std::span<const int32_t> row,
                                std::span<const int32_t> col, std::span<const float> value);

  // Returns the cols x rows transpose, built in parallel.
  CsrMatrix Transpose() const;

  int32_t rows() const { return rows_; }
  int32_t cols() const { return cols_; }
  int64_t nnz() const { return static_cast<int64_t>(indices_.size()); }

  // Column indices / values of row r (sorted by column). Requires 0 <= r < rows().
  std::span<const int32_t> RowIndices(int32_t r) const {
    return {indices_.data() + indptr_[r], static_cast<size_t>(indptr_[r + 1] - indptr_[r])};
  }
  std::span<const float> RowValues(int32_t r) const {
    return {values_.data() + indptr_[r], static_cast<size_t>(indptr_[r + 1] - indptr_[r])};
  }
  int64_t RowSize(int32_t r) const { return indptr_[r + 1] - indptr_[r]; }

  // True if row r holds column c (binary search).
  bool Contains(int32_t r, int32_t c) const;

  const std::vector<int64_t>& indptr() const { return indptr_; }
  const std::vector<int32_t>& indices() const { return indices_; }
  const std::vector<float>& values() const { return values_; }

  // Bytes held by the three arrays.
  size_t MemoryBytes() const;

  // Builds from raw arrays (used by model loading). indptr has rows+1 entries.
  static CsrMatrix FromArrays(int32_t rows, int32_t cols, std::vector<int64_t> indptr,
                              std::vector<int32_t> indices, std::vector<float> values);

 private:
  int32_t rows_ = 0;
  int32_t cols_ = 0;
  std::vector<int64_t> indptr_;  // size rows_ + 1
  std::vector<int32_t> indices_;
  std::vector<float> values_;
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_CSR_MATRIX_H_
