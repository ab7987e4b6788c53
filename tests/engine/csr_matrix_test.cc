#include "engine/csr_matrix.h"

#include <random>

#include "gtest/gtest.h"

namespace recloop {
namespace {

TEST(CsrMatrix, BuildsSortedRowsFromUnsortedTriplets) {
  const std::vector<int32_t> row = {2, 0, 2, 0, 1};
  const std::vector<int32_t> col = {3, 2, 0, 1, 3};
  const std::vector<float> val = {1.5f, 2.0f, 3.0f, 4.0f, 5.0f};
  const CsrMatrix m = CsrMatrix::FromTriplets(3, 4, row, col, val);
  EXPECT_EQ(m.rows(), 3);
  EXPECT_EQ(m.cols(), 4);
  EXPECT_EQ(m.nnz(), 5);
  EXPECT_EQ(m.indptr(), (std::vector<int64_t>{0, 2, 3, 5}));
  EXPECT_EQ(std::vector<int32_t>(m.RowIndices(0).begin(), m.RowIndices(0).end()),
            (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(std::vector<float>(m.RowValues(0).begin(), m.RowValues(0).end()),
            (std::vector<float>{4.0f, 2.0f}));
  EXPECT_EQ(std::vector<int32_t>(m.RowIndices(2).begin(), m.RowIndices(2).end()),
            (std::vector<int32_t>{0, 3}));
  EXPECT_TRUE(m.Contains(1, 3));
  EXPECT_FALSE(m.Contains(1, 2));
}

TEST(CsrMatrix, TransposeSwapsRowsAndColumns) {
  std::mt19937 rng(7);
  std::vector<int32_t> row, col;
  std::vector<float> val;
  for (int r = 0; r < 50; ++r) {
    for (int c = 0; c < 40; ++c) {
      if (rng() % 5 == 0) {
        row.push_back(r);
        col.push_back(c);
        val.push_back(static_cast<float>(r * 100 + c));
      }
    }
  }
  const CsrMatrix m = CsrMatrix::FromTriplets(50, 40, row, col, val);
  const CsrMatrix t = m.Transpose();
  ASSERT_EQ(t.rows(), 40);
  ASSERT_EQ(t.cols(), 50);
  ASSERT_EQ(t.nnz(), m.nnz());
  for (int32_t c = 0; c < 40; ++c) {
    auto idx = t.RowIndices(c);
    auto v = t.RowValues(c);
    for (size_t j = 0; j < idx.size(); ++j) {
      if (j > 0) {
        EXPECT_LT(idx[j - 1], idx[j]);
      }
      EXPECT_TRUE(m.Contains(idx[j], c));
      EXPECT_EQ(v[j], static_cast<float>(idx[j] * 100 + c));
    }
  }
  const CsrMatrix back = t.Transpose();
  EXPECT_EQ(back.indptr(), m.indptr());
  EXPECT_EQ(back.indices(), m.indices());
  EXPECT_EQ(back.values(), m.values());
}

TEST(CsrMatrix, EmptyRowsAndEmptyMatrix) {
  const CsrMatrix m = CsrMatrix::FromTriplets(4, 2, {}, {}, {});
  EXPECT_EQ(m.nnz(), 0);
  EXPECT_EQ(m.RowSize(3), 0);
  EXPECT_EQ(m.Transpose().rows(), 2);
}

}  // namespace
}  // namespace recloop
