// Comm: the MPI communicator of the distributed trainer (internal to training/distributed_*.cc),
// through a few typed collectives. MPI counts and displacements are ints (OpenMPI 4.1 has no
// MPI 4 large-count calls), so a transfer of more than INT_MAX elements, or one whose offset in
// a buffer passes INT_MAX, goes in rounds (Comm::Move).
//
// Thread safety: every method is a collective (or a point-to-point call) that only the thread
// that called MPI_Init (MPI_THREAD_FUNNELED) may make; every process must make the same calls in
// the same order.
#ifndef RECLOOP_TRAINING_DISTRIBUTED_COMM_H_
#define RECLOOP_TRAINING_DISTRIBUTED_COMM_H_

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"

namespace recloop::distributed_internal {

// Strings as MPI sends them: their sizes and their bytes back to back.
struct PackedStrings {
  std::vector<int32_t> sizes;
  std::vector<char> bytes;

  void Add(std::string_view s) {
    sizes.push_back(static_cast<int32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  static std::vector<std::string> Unpack(const std::vector<int32_t>& sizes,
                                         const std::vector<char>& bytes);
};

class Comm {
 public:
  // `max_message`: the most elements one process sends another in one MPI call (at most
  // INT_MAX); larger transfers go in rounds.
  explicit Comm(MPI_Comm comm, int64_t max_message = INT_MAX) : comm_(comm), max_(max_message) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
  }
  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // How many transfers went in more than one call (or through 64-bit offsets) so far.
  int64_t split_transfers() const { return split_; }

  // Every process's `local`; returns on every process the error of the lowest failing rank,
  // "rank R: message" (and how many others failed), or OK if none failed.
  absl::Status Agree(const absl::Status& local) const;

  // A short string (a message, a line of a file).
  void Broadcast(std::string* s, int root) const;

  template <typename T>
  T Sum(T x) const {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, Type<T>(), MPI_SUM, comm_);
    return x;
  }
  template <typename T>
  T Max(T x) const {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, Type<T>(), MPI_MAX, comm_);
    return x;
  }
  template <typename T>
  T Min(T x) const {
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, Type<T>(), MPI_MIN, comm_);
    return x;
  }
  template <typename T>
  void SumInPlace(T* data, int n) const {
    MPI_Allreduce(MPI_IN_PLACE, data, n, Type<T>(), MPI_SUM, comm_);
  }
  template <typename T>
  std::vector<T> AllGather(T x) const {
    std::vector<T> out(size_);
    MPI_Allgather(&x, 1, Type<T>(), out.data(), 1, Type<T>(), comm_);
    return out;
  }

  // Sends send[q] to process q; returns what every process sent here, in rank order, and in
  // `from` (if not null) how many elements came from each.
  template <typename T>
  std::vector<T> AllToAll(const std::vector<std::vector<T>>& send,
                          std::vector<int64_t>* from = nullptr) const {
    std::vector<int64_t> send_counts(size_), send_at(size_), recv_counts(size_), recv_at(size_);
    std::vector<T> flat;
    size_t total = 0;
    for (const auto& v : send) total += v.size();
    flat.reserve(total);
    for (int q = 0; q < size_; ++q) {
      send_at[q] = static_cast<int64_t>(flat.size());
      send_counts[q] = static_cast<int64_t>(send[q].size());
      flat.insert(flat.end(), send[q].begin(), send[q].end());
    }
    MPI_Alltoall(send_counts.data(), 1, MPI_INT64_T, recv_counts.data(), 1, MPI_INT64_T, comm_);
    int64_t recv_total = 0;
    for (int q = 0; q < size_; ++q) {
      recv_at[q] = recv_total;
      recv_total += recv_counts[q];
    }
    std::vector<T> out(static_cast<size_t>(recv_total));
    Move(flat.data(), send_counts, send_at, out.data(), recv_counts, recv_at, sizeof(T));
    if (from != nullptr) *from = std::move(recv_counts);
    return out;
  }

  // Every process's `mine`, concatenated in rank order, on every process (root < 0) or on the
  // root only.
  template <typename T>
  std::vector<T> Gather(const std::vector<T>& mine, int root = -1) const {
    const int64_t n = static_cast<int64_t>(mine.size());
    const std::vector<int64_t> counts = AllGather(n);  // every process decides alike below
    std::vector<int64_t> at(size_, 0);
    int64_t total = 0;
    for (int q = 0; q < size_; ++q) {
      at[q] = total;
      total += counts[q];
    }
    const bool here = root < 0 || rank_ == root;
    std::vector<T> out;
    if (here) out.resize(static_cast<size_t>(total));
    if (total <= max_) {
      std::vector<int> c(size_), d(size_);
      for (int q = 0; q < size_; ++q) {
        c[q] = static_cast<int>(counts[q]);
        d[q] = static_cast<int>(at[q]);
      }
      MPI_Datatype type = Bytes(sizeof(T));
      if (root < 0) {
        MPI_Allgatherv(mine.data(), static_cast<int>(n), type, out.data(), c.data(), d.data(),
                       type, comm_);
      } else {
        MPI_Gatherv(mine.data(), static_cast<int>(n), type, out.data(), c.data(), d.data(), type,
                    root, comm_);
      }
      MPI_Type_free(&type);
      return out;
    }
    // Too large for int counts: the same blocks as all-to-all transfers, in rounds.
    std::vector<int64_t> send_counts(size_, 0), send_at(size_, 0), recv_counts(size_, 0);
    for (int q = 0; q < size_; ++q) {
      if (root < 0 || q == root) send_counts[q] = n;
      if (here) recv_counts[q] = counts[q];
    }
    Move(mine.data(), send_counts, send_at, out.data(), recv_counts, at, sizeof(T));
    return out;
  }

  // Strings: every process's list, concatenated in rank order (on every process or the root).
  std::vector<std::string> GatherStrings(const std::vector<std::string>& mine,
                                         int root = -1) const;

  // Sends the strings send[q] to process q; returns those received, in rank order, and in
  // `from` how many came from each process.
  std::vector<std::string> AllToAllStrings(const std::vector<std::vector<std::string_view>>& send,
                                           std::vector<int64_t>* from) const;

  // Moves blocks of `unit`-byte elements: send_counts[q] elements at send + send_at[q] elements
  // to process q, and recv_counts[q] elements from process q to recv + recv_at[q]. Collective;
  // every process passes the same unit. One MPI_Alltoallv when every count and offset of every
  // process fits max_; otherwise rounds of at most max_ elements per pair of processes, each an
  // MPI_Alltoallw whose per-process types carry 64-bit byte offsets (MPI_Aint).
  void Move(const void* send, const std::vector<int64_t>& send_counts,
            const std::vector<int64_t>& send_at, void* recv,
            const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_at,
            size_t unit) const;

  // Counts that cannot pass INT_MAX by construction (rows of one side: global indices are
  // int32): checked all the same.
  // Aborts the job (MPI_Abort) with a message on stderr if n > INT_MAX.
  static int CheckedInt(int64_t n);

  // A contiguous type of `bytes` bytes (free with MPI_Type_free).
  static MPI_Datatype Bytes(size_t bytes);

  template <typename T>
  static MPI_Datatype Type() {
    if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
    if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
    if constexpr (std::is_same_v<T, int64_t>) return MPI_INT64_T;
    if constexpr (std::is_same_v<T, int32_t>) return MPI_INT32_T;
    if constexpr (std::is_same_v<T, uint8_t>) return MPI_UINT8_T;
  }

 private:
  MPI_Comm comm_;
  int64_t max_ = INT_MAX;
  int rank_ = 0;
  int size_ = 1;
  mutable int64_t split_ = 0;  // transfers that went in rounds
};


}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_COMM_H_
