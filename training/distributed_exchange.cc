// The factor exchange of a half-step (distributed_exchange.h).
#include "training/distributed_exchange.h"

#include <algorithm>
#include <cstring>

#include "tbb/parallel_for.h"
#include "tbb/parallel_sort.h"

namespace recloop::distributed_internal {

RowExchange RowExchange::Plan(const Comm& comm, FactorExchange mode,
                              const std::vector<int32_t>& needed, const Side& other) {
  RowExchange x;
  x.mode_ = mode;
  const int ranks = comm.size();
  x.recv_rows_.assign(ranks, 0);
  x.send_rows_.assign(ranks, {});
  x.own_rows_ = other.count(comm.rank());
  if (mode == FactorExchange::kAllgather) {
    for (int q = 0; q < ranks; ++q) x.recv_rows_[q] = other.count(q);
    x.needed_ = other.total();
    return x;
  }
  std::vector<std::vector<int32_t>> requests(ranks);
  for (int32_t g : needed) {
    const int q = other.OwnerOf(g);
    requests[q].push_back(g - other.begin(q));
    ++x.recv_rows_[q];
  }
  std::vector<int64_t> from;
  const std::vector<int32_t> asked = comm.AllToAll(requests, &from);
  size_t at = 0;
  for (int q = 0; q < ranks; ++q) {
    x.send_rows_[q].assign(asked.begin() + static_cast<int64_t>(at),
                           asked.begin() + static_cast<int64_t>(at + from[q]));
    at += static_cast<size_t>(from[q]);
  }
  x.needed_ = static_cast<int64_t>(needed.size());
  return x;
}

int64_t RowExchange::Fetch(const Comm& comm, const FactorMatrix& own,
                           const Eigen::VectorXf* own_bias, FactorMatrix* out,
                           Eigen::VectorXf* out_bias) const {
  const int ranks = comm.size();
  const int k = static_cast<int>(own.cols());
  const int width = k + (own_bias != nullptr ? 1 : 0);
  auto pack = [&](int32_t local, float* to) {
    std::memcpy(to, own.row(local).data(), sizeof(float) * k);
    if (own_bias != nullptr) to[k] = (*own_bias)[local];
  };
  std::vector<int> recv_counts(ranks), recv_displs(ranks);
  int64_t total = 0;
  for (int q = 0; q < ranks; ++q) {
    recv_displs[q] = Comm::CheckedInt(total);
    recv_counts[q] = Comm::CheckedInt(recv_rows_[q]);
    total += recv_rows_[q];
  }
  // Without biases the rows arrive straight in `out`; with them, in a buffer to split.
  std::vector<float> buffer;
  out->resize(total, k);
  if (own_bias != nullptr) {
    buffer.resize(static_cast<size_t>(total) * width);
    out_bias->resize(total);
  }
  float* recv = own_bias != nullptr ? buffer.data() : out->data();
  MPI_Datatype row_type = Comm::Bytes(sizeof(float) * width);
  int64_t bytes_sent = 0;
  if (mode_ == FactorExchange::kAllgather) {
    std::vector<float> send(static_cast<size_t>(own_rows_) * width);
    tbb::parallel_for(int32_t{0}, own_rows_, [&](int32_t r) { pack(r, &send[size_t(r) * width]); });
    MPI_Allgatherv(send.data(), own_rows_, row_type, recv, recv_counts.data(),
                   recv_displs.data(), row_type, comm.get());
    bytes_sent = int64_t{own_rows_} * width * 4 * (ranks - 1);
  } else {
    std::vector<int> send_counts(ranks), send_displs(ranks);
    int64_t send_total = 0;
    for (int q = 0; q < ranks; ++q) {
      send_displs[q] = Comm::CheckedInt(send_total);
      send_counts[q] = Comm::CheckedInt(static_cast<int64_t>(send_rows_[q].size()));
      send_total += send_counts[q];
      if (q != comm.rank()) bytes_sent += int64_t{send_counts[q]} * width * 4;
    }
    std::vector<float> send(static_cast<size_t>(send_total) * width);
    for (int q = 0; q < ranks; ++q) {
      const std::vector<int32_t>& rows = send_rows_[q];
      const size_t base = static_cast<size_t>(send_displs[q]);
      tbb::parallel_for(size_t{0}, rows.size(),
                        [&](size_t j) { pack(rows[j], &send[(base + j) * width]); });
    }
    MPI_Alltoallv(send.data(), send_counts.data(), send_displs.data(), row_type, recv,
                  recv_counts.data(), recv_displs.data(), row_type, comm.get());
  }
  MPI_Type_free(&row_type);
  if (own_bias != nullptr) {
    tbb::parallel_for(int64_t{0}, total, [&](int64_t r) {
      const float* from = &buffer[static_cast<size_t>(r) * width];
      std::memcpy(out->row(r).data(), from, sizeof(float) * k);
      (*out_bias)[r] = from[k];
    });
  }
  return bytes_sent;
}

// The sorted distinct columns of `m`, and `m` with its columns renumbered into that list.
std::pair<std::vector<int32_t>, CsrMatrix> Compact(const CsrMatrix& m) {
  std::vector<int32_t> cols(m.indices().begin(), m.indices().end());
  tbb::parallel_sort(cols.begin(), cols.end());
  cols.erase(std::unique(cols.begin(), cols.end()), cols.end());
  std::vector<int32_t> indices(m.indices().size());
  tbb::parallel_for(size_t{0}, indices.size(), [&](size_t k) {
    indices[k] = static_cast<int32_t>(
        std::lower_bound(cols.begin(), cols.end(), m.indices()[k]) - cols.begin());
  });
  CsrMatrix c = CsrMatrix::FromArrays(m.rows(), static_cast<int32_t>(cols.size()), m.indptr(),
                                      std::move(indices), m.values());
  return {std::move(cols), std::move(c)};
}

// YᵀY + reg·I over every process's rows of one side. Summed in double across processes.
Eigen::MatrixXf GlobalGram(const Comm& comm, const FactorMatrix& own, int k, float reg) {
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(k, k);
  if (own.rows() > 0) g = RegularizedGram(own, 0.0f).cast<double>();
  comm.SumInPlace(g.data(), k * k);
  Eigen::MatrixXf out = g.cast<float>();
  out.diagonal().array() += reg;
  return out;
}

}  // namespace recloop::distributed_internal
