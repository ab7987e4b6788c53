#include "engine/csr_matrix.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <memory>

#include "tbb/parallel_for.h"

namespace recloop {
namespace {

constexpr int64_t kGrain = 1 << 16;

// Counting sort of n entries into rows, then a per-row sort by column. `row_of(k)`,
// `col_of(k)`, `value_of(k)` describe entry k.
template <typename RowOf, typename ColOf, typename ValueOf>
void Bucket(int32_t rows, int64_t n, RowOf row_of, ColOf col_of, ValueOf value_of,
            std::vector<int64_t>* indptr, std::vector<int32_t>* indices,
            std::vector<float>* values) {
  std::unique_ptr<std::atomic<int64_t>[]> fill(new std::atomic<int64_t>[rows + 1]);
  for (int32_t r = 0; r <= rows; ++r) fill[r].store(0, std::memory_order_relaxed);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain), [&](const auto& range) {
    for (int64_t k = range.begin(); k != range.end(); ++k) {
      fill[row_of(k)].fetch_add(1, std::memory_order_relaxed);
    }
  });
  indptr->assign(rows + 1, 0);
  for (int32_t r = 0; r < rows; ++r) {
    (*indptr)[r + 1] = (*indptr)[r] + fill[r].load(std::memory_order_relaxed);
    fill[r].store((*indptr)[r], std::memory_order_relaxed);
  }
  // Pack (col, value bits) into one 64-bit key so that a row sorts with one std::sort.
  std::vector<uint64_t> packed(n);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kGrain), [&](const auto& range) {
    for (int64_t k = range.begin(); k != range.end(); ++k) {
      const int64_t pos = fill[row_of(k)].fetch_add(1, std::memory_order_relaxed);
      packed[pos] = (static_cast<uint64_t>(static_cast<uint32_t>(col_of(k))) << 32) |
                    std::bit_cast<uint32_t>(value_of(k));
    }
  });
  indices->resize(n);
  values->resize(n);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, rows, 256), [&](const auto& range) {
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      auto* begin = packed.data() + (*indptr)[r];
      auto* end = packed.data() + (*indptr)[r + 1];
      std::sort(begin, end);
      for (auto* p = begin; p != end; ++p) {
        const int64_t pos = p - packed.data();
        (*indices)[pos] = static_cast<int32_t>(*p >> 32);
        (*values)[pos] = std::bit_cast<float>(static_cast<uint32_t>(*p & 0xffffffffu));
      }
    }
  });
}

}  // namespace

CsrMatrix CsrMatrix::FromTriplets(int32_t rows, int32_t cols, std::span<const int32_t> row,
                                  std::span<const int32_t> col, std::span<const float> value) {
  CsrMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  Bucket(
      rows, static_cast<int64_t>(row.size()), [&](int64_t k) { return row[k]; },
      [&](int64_t k) { return col[k]; }, [&](int64_t k) { return value[k]; }, &m.indptr_,
      &m.indices_, &m.values_);
  return m;
}

CsrMatrix CsrMatrix::Transpose() const {
  // Expanded row index of every entry, so that the bucketing sees entries independently.
  std::vector<int32_t> row_of(indices_.size());
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, rows_, 256), [&](const auto& range) {
    for (int32_t r = range.begin(); r != range.end(); ++r) {
      std::fill(row_of.begin() + indptr_[r], row_of.begin() + indptr_[r + 1], r);
    }
  });
  CsrMatrix t;
  t.rows_ = cols_;
  t.cols_ = rows_;
  Bucket(
      cols_, nnz(), [&](int64_t k) { return indices_[k]; }, [&](int64_t k) { return row_of[k]; },
      [&](int64_t k) { return values_[k]; }, &t.indptr_, &t.indices_, &t.values_);
  return t;
}

bool CsrMatrix::Contains(int32_t r, int32_t c) const {
  auto idx = RowIndices(r);
  return std::binary_search(idx.begin(), idx.end(), c);
}

size_t CsrMatrix::MemoryBytes() const {
  return indptr_.capacity() * sizeof(int64_t) + indices_.capacity() * sizeof(int32_t) +
         values_.capacity() * sizeof(float);
}

CsrMatrix CsrMatrix::FromArrays(int32_t rows, int32_t cols, std::vector<int64_t> indptr,
                                std::vector<int32_t> indices, std::vector<float> values) {
  CsrMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.indptr_ = std::move(indptr);
  m.indices_ = std::move(indices);
  m.values_ = std::move(values);
  return m;
}

}  // namespace recloop
