#include "training/distributed_als.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "engine/csr_matrix.h"
#include "engine/status_macros.h"
#include "tbb/global_control.h"
#include "tbb/parallel_for.h"
#include "tbb/parallel_sort.h"
#include "tbb/task_arena.h"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Strings as MPI sends them: their sizes and their bytes back to back.
struct PackedStrings {
  std::vector<int32_t> sizes;
  std::vector<char> bytes;

  void Add(std::string_view s) {
    sizes.push_back(static_cast<int32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  static std::vector<std::string> Unpack(const std::vector<int32_t>& sizes,
                                         const std::vector<char>& bytes) {
    std::vector<std::string> out;
    out.reserve(sizes.size());
    size_t at = 0;
    for (int32_t n : sizes) {
      out.emplace_back(bytes.data() + at, static_cast<size_t>(n));
      at += static_cast<size_t>(n);
    }
    return out;
  }
};

// ---------------------------------------------------------------------------------------------
// MPI, through a few typed collectives. MPI counts and displacements are ints (OpenMPI 4.1 has
// no MPI 4 large-count calls), so a transfer of more than INT_MAX elements, or one whose offset
// in a buffer passes INT_MAX, goes in rounds (Comm::Move).

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
  absl::Status Agree(const absl::Status& local) const {
    const int failed = local.ok() ? 0 : 1;
    std::vector<int> all(size_);
    MPI_Allgather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, comm_);
    const auto first_it = std::find(all.begin(), all.end(), 1);
    if (first_it == all.end()) return absl::OkStatus();
    const int first = static_cast<int>(first_it - all.begin());
    const int others = static_cast<int>(std::count(all.begin(), all.end(), 1)) - 1;
    std::string message = rank_ == first ? std::string(local.message()) : std::string();
    int code = static_cast<int>(local.code());
    MPI_Bcast(&code, 1, MPI_INT, first, comm_);
    Broadcast(&message, first);
    if (others > 0) absl::StrAppend(&message, " (and ", others, " other ranks failed)");
    return absl::Status(static_cast<absl::StatusCode>(code),
                        absl::StrCat("rank ", first, ": ", message));
  }

  // A short string (a message, a line of a file).
  void Broadcast(std::string* s, int root) const {
    int64_t size = static_cast<int64_t>(s->size());
    MPI_Bcast(&size, 1, MPI_INT64_T, root, comm_);
    s->resize(static_cast<size_t>(size));
    MPI_Bcast(s->data(), CheckedInt(size), MPI_CHAR, root, comm_);
  }

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
                                         int root = -1) const {
    PackedStrings packed;
    for (const std::string& s : mine) packed.Add(s);
    return PackedStrings::Unpack(Gather(packed.sizes, root), Gather(packed.bytes, root));
  }

  // Sends the strings send[q] to process q; returns those received, in rank order, and in
  // `from` how many came from each process.
  std::vector<std::string> AllToAllStrings(const std::vector<std::vector<std::string_view>>& send,
                                           std::vector<int64_t>* from) const {
    std::vector<std::vector<int32_t>> sizes(size_);
    std::vector<std::vector<char>> bytes(size_);
    for (int q = 0; q < size_; ++q) {
      PackedStrings packed;
      for (std::string_view s : send[q]) packed.Add(s);
      sizes[q] = std::move(packed.sizes);
      bytes[q] = std::move(packed.bytes);
    }
    std::vector<int32_t> got_sizes = AllToAll(sizes, from);
    return PackedStrings::Unpack(got_sizes, AllToAll(bytes));
  }

  // Moves blocks of `unit`-byte elements: send_counts[q] elements at send + send_at[q] elements
  // to process q, and recv_counts[q] elements from process q to recv + recv_at[q]. Collective;
  // every process passes the same unit. One MPI_Alltoallv when every count and offset of every
  // process fits max_; otherwise rounds of at most max_ elements per pair of processes, each an
  // MPI_Alltoallw whose per-process types carry 64-bit byte offsets (MPI_Aint).
  void Move(const void* send, const std::vector<int64_t>& send_counts,
            const std::vector<int64_t>& send_at, void* recv,
            const std::vector<int64_t>& recv_counts, const std::vector<int64_t>& recv_at,
            size_t unit) const {
    int64_t worst[2] = {0, 0};  // [0]: the largest end offset; [1]: the rounds needed
    for (int q = 0; q < size_; ++q) {
      worst[0] = std::max({worst[0], send_at[q] + send_counts[q], recv_at[q] + recv_counts[q]});
      worst[1] = std::max({worst[1], (send_counts[q] + max_ - 1) / max_,
                           (recv_counts[q] + max_ - 1) / max_});
    }
    MPI_Allreduce(MPI_IN_PLACE, worst, 2, MPI_INT64_T, MPI_MAX, comm_);
    MPI_Datatype type = Bytes(unit);
    if (worst[0] <= max_) {
      std::vector<int> sc(size_), sd(size_), rc(size_), rd(size_);
      for (int q = 0; q < size_; ++q) {
        sc[q] = static_cast<int>(send_counts[q]);
        sd[q] = static_cast<int>(send_at[q]);
        rc[q] = static_cast<int>(recv_counts[q]);
        rd[q] = static_cast<int>(recv_at[q]);
      }
      MPI_Alltoallv(send, sc.data(), sd.data(), type, recv, rc.data(), rd.data(), type, comm_);
      MPI_Type_free(&type);
      return;
    }
    ++split_;
    std::vector<int> zeros(size_, 0), sc(size_), rc(size_);
    std::vector<MPI_Datatype> st(size_), rt(size_);
    // The piece [r * max_, ...) of a block of `count` elements at `at`, as one instance of a
    // type displaced from the buffer's start; MPI_BYTE with count 0 when the block is done.
    auto piece = [&](int64_t r, int64_t count, int64_t at, int* n, MPI_Datatype* t) {
      const int64_t begin = r * max_;
      const int64_t len = std::min(max_, count - begin);
      if (len <= 0) {
        *n = 0;
        *t = MPI_BYTE;
        return;
      }
      const int block = static_cast<int>(len);
      const MPI_Aint displacement = static_cast<MPI_Aint>((at + begin) * static_cast<int64_t>(unit));
      MPI_Type_create_hindexed(1, &block, &displacement, type, t);
      MPI_Type_commit(t);
      *n = 1;
    };
    for (int64_t r = 0; r < worst[1]; ++r) {
      for (int q = 0; q < size_; ++q) {
        piece(r, send_counts[q], send_at[q], &sc[q], &st[q]);
        piece(r, recv_counts[q], recv_at[q], &rc[q], &rt[q]);
      }
      MPI_Alltoallw(send, sc.data(), zeros.data(), st.data(), recv, rc.data(), zeros.data(),
                    rt.data(), comm_);
      for (int q = 0; q < size_; ++q) {
        if (sc[q] != 0) MPI_Type_free(&st[q]);
        if (rc[q] != 0) MPI_Type_free(&rt[q]);
      }
    }
    MPI_Type_free(&type);
  }

  // Counts that cannot pass INT_MAX by construction (rows of one side: global indices are
  // int32): checked all the same.
  static int CheckedInt(int64_t n) {
    if (n > INT_MAX) {
      std::fprintf(stderr, "distributed ALS: a count of %lld exceeds MPI's int\n",
                   static_cast<long long>(n));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return static_cast<int>(n);
  }

  // A contiguous type of `bytes` bytes (free with MPI_Type_free).
  static MPI_Datatype Bytes(size_t bytes) {
    MPI_Datatype t;
    MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &t);
    MPI_Type_commit(&t);
    return t;
  }

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

// ---------------------------------------------------------------------------------------------
// IDs and ownership.

int HashOwner(std::string_view id, int ranks) {
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

// Sends every ID of `local` to the process its hash names. Each process first sees all the IDs
// it was sent (`on_received`, in rank order, e.g. to number them: a collective step, which every
// process takes), then answers each (`answer`). Returns the answer for each local index.
template <typename OnReceived, typename Answer>
std::vector<int32_t> AskOwners(const Comm& comm, const IdMap& local, OnReceived on_received,
                               Answer answer) {
  const int ranks = comm.size();
  std::vector<std::vector<std::string_view>> send(ranks);
  std::vector<std::vector<int32_t>> sent_index(ranks);
  for (int32_t l = 0; l < local.size(); ++l) {
    const int q = HashOwner(local.External(l), ranks);
    send[q].push_back(local.External(l));
    sent_index[q].push_back(l);
  }
  std::vector<int64_t> from;
  const std::vector<std::string> got = comm.AllToAllStrings(send, &from);
  on_received(got);
  std::vector<std::vector<int32_t>> reply(ranks);
  size_t at = 0;
  for (int q = 0; q < ranks; ++q) {
    for (int64_t k = 0; k < from[q]; ++k) reply[q].push_back(answer(got[at++]));
  }
  const std::vector<int32_t> answers = comm.AllToAll(reply);
  std::vector<int32_t> global(local.size());
  at = 0;
  for (int q = 0; q < ranks; ++q) {
    for (int32_t l : sent_index[q]) global[l] = answers[at++];
  }
  return global;
}

// Numbers the IDs of every process's `local` map: the owner (by hash) of each ID sorts its IDs
// and places them after the IDs of lower ranks. Fills `side` and returns the global index of
// each local index.
absl::StatusOr<std::vector<int32_t>> NumberIds(const Comm& comm, const IdMap& local, Side* side,
                                               std::string_view what) {
  const int ranks = comm.size();
  std::vector<int32_t> global = AskOwners(
      comm, local,
      [&](const std::vector<std::string>& got) {
        std::vector<std::string> mine = got;
        tbb::parallel_sort(mine.begin(), mine.end());
        mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
        const std::vector<int64_t> counts = comm.AllGather(static_cast<int64_t>(mine.size()));
        side->offsets.assign(ranks + 1, 0);
        for (int q = 0; q < ranks; ++q) side->offsets[q + 1] = side->offsets[q] + counts[q];
        const int64_t base = side->offsets[comm.rank()];
        side->index.reserve(mine.size());
        for (size_t k = 0; k < mine.size(); ++k) {
          side->index.emplace(mine[k], static_cast<int32_t>(base + static_cast<int64_t>(k)));
        }
        side->ids = std::move(mine);
      },
      [&](const std::string& id) { return side->index.at(id); });
  // Every process sees the same offsets, so all return the same verdict.
  if (side->offsets.back() > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("too many distinct ", std::string(what), " IDs"));
  }
  return global;
}

// The global index of each index of `local` (-1 for IDs no process owns), asking the owners.
std::vector<int32_t> LookUpIds(const Comm& comm, const IdMap& local, const Side& side) {
  return AskOwners(
      comm, local, [](const std::vector<std::string>&) {},
      [&](const std::string& id) {
        const auto it = side.index.find(id);
        return it == side.index.end() ? -1 : it->second;
      });
}

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

// ---------------------------------------------------------------------------------------------
// The factor exchange of a half-step.

class RowExchange {
 public:
  // `needed`: the sorted global indices of the other side that this process's rows touch;
  // `other`: the other side's partition. Collective.
  static RowExchange Plan(const Comm& comm, FactorExchange mode, const std::vector<int32_t>& needed,
                          const Side& other) {
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

  // The rows this process receives: needed.size() (block) or the whole other side (allgather).
  int64_t rows() const { return needed_; }

  // Sends this process's rows of the other side (`own`, and `own_bias` if not null) to those
  // that need them; fills `out` (rows() x K) and `out_bias`. Returns the bytes this process
  // sent to others. Collective.
  int64_t Fetch(const Comm& comm, const FactorMatrix& own, const Eigen::VectorXf* own_bias,
                FactorMatrix* out, Eigen::VectorXf* out_bias) const {
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

 private:
  FactorExchange mode_ = FactorExchange::kBlock;
  std::vector<int64_t> recv_rows_;               // per source rank
  std::vector<std::vector<int32_t>> send_rows_;  // per destination: own local rows, in order
  int32_t own_rows_ = 0;
  int64_t needed_ = 0;
};

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

// Adds every process's sums into `sums` (on every process).
void ReduceSums(const Comm& comm, EvalSums* sums) {
  double d[8] = {sums->squared_error, sums->absolute_error, sums->precision, sums->recall,
                 sums->ndcg,          sums->map,            sums->hit_rate,  sums->auc};
  comm.SumInPlace(d, 8);
  sums->squared_error = d[0];
  sums->absolute_error = d[1];
  sums->precision = d[2];
  sums->recall = d[3];
  sums->ndcg = d[4];
  sums->map = d[5];
  sums->hit_rate = d[6];
  sums->auc = d[7];
  int64_t n[4] = {sums->users, sums->test_interactions, sums->unknown_user_rows,
                  sums->unknown_item_rows};
  comm.SumInPlace(n, 4);
  sums->users = n[0];
  sums->test_interactions = n[1];
  sums->unknown_user_rows = n[2];
  sums->unknown_item_rows = n[3];
  MPI_Allreduce(MPI_IN_PLACE, sums->recommended.data(),
                Comm::CheckedInt(static_cast<int64_t>(sums->recommended.size())), MPI_UINT8_T,
                MPI_BOR, comm.get());
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

}  // namespace

absl::StatusOr<FactorExchange> ParseFactorExchange(std::string_view s) {
  if (s == "block") return FactorExchange::kBlock;
  if (s == "allgather") return FactorExchange::kAllgather;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown exchange '", std::string(s), "' (expected block or allgather)"));
}

std::string_view ToString(FactorExchange e) {
  return e == FactorExchange::kBlock ? "block" : "allgather";
}

absl::StatusOr<DistributedTrainResult> TrainDistributed(
    MPI_Comm mpi_comm, const DistributedOptions& options,
    const DistributedIterationCallback& on_iteration) {
  const Comm comm(mpi_comm, std::clamp<int64_t>(options.max_message_elements, 1, INT_MAX));
  const int ranks = comm.size();
  const int me = comm.rank();
  const AlsOptions& o = options.als;
  const int k = o.factors;
  const bool explicit_feedback = o.feedback == Feedback::kExplicit;
  DistributedTrainResult result;
  result.ranks = ranks;
  const auto read_start = Clock::now();

  absl::Status valid = ValidateAlsOptions(o);
  if (valid.ok()) valid = ValidatePopularityOptions(options.popularity);
  if (valid.ok() && options.eval.k < 1) valid = absl::InvalidArgumentError("k must be >= 1");
  if (valid.ok() && (options.max_message_elements < 1 || options.max_message_elements > INT_MAX)) {
    valid = absl::InvalidArgumentError("max_message_elements must be in [1, INT_MAX]");
  }
  RETURN_IF_ERROR(comm.Agree(valid));

  // --- Each process reads its byte range of the file.
  auto read_range = [&](const std::string& path, ReadStats* stats) -> absl::StatusOr<Interactions> {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
    const int64_t bytes = static_cast<int64_t>(size);
    FileRange range;
    range.begin = bytes / ranks * me + std::min<int64_t>(me, bytes % ranks);
    range.end = range.begin + bytes / ranks + (me < bytes % ranks ? 1 : 0);
    return ReadInteractionsRange(path, options.read, range, stats);
  };
  ReadStats read_stats;
  absl::StatusOr<Interactions> local = read_range(options.data_path, &read_stats);
  RETURN_IF_ERROR(comm.Agree(local.status()));
  result.rows_read = comm.Sum(read_stats.rows_read);
  result.rows_skipped = comm.Sum(read_stats.rows_skipped);
  {
    // The lowest rank's first skipped row, as a whole read would name the file's first.
    const std::vector<int32_t> has = comm.AllGather(int32_t{read_stats.first_skipped.empty() ? 0 : 1});
    const auto first = std::find(has.begin(), has.end(), 1);
    if (first != has.end()) {
      const int r = static_cast<int>(first - has.begin());
      std::string s = read_stats.first_skipped;
      comm.Broadcast(&s, r);
      result.first_skipped = absl::StrCat("rank ", r, ": ", s);
    }
  }
  const bool has_timestamps = comm.Max(int32_t{local->has_timestamps ? 1 : 0}) != 0;
  if (options.popularity.half_life_days > 0 && !has_timestamps) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.data_path, ": popularity decay needs timestamps, and the file has none"));
  }

  // --- Global IDs.
  Side users, items;
  ASSIGN_OR_RETURN(const std::vector<int32_t> user_of, NumberIds(comm, local->users, &users, "user"));
  ASSIGN_OR_RETURN(const std::vector<int32_t> item_of, NumberIds(comm, local->items, &items, "item"));
  const int32_t num_users = users.total();
  const int32_t num_items = items.total();
  const int32_t my_users = users.count(me), my_items = items.count(me);
  const int32_t user_base = users.begin(me), item_base = items.begin(me);

  // --- Interactions to the owners of their users, merged across ranges.
  std::vector<Row> by_user_rows;
  int64_t merged = read_stats.duplicates_merged;
  {
    std::vector<std::vector<Row>> send(ranks);
    for (int64_t r = 0; r < local->size(); ++r) {
      Row row{user_of[local->user[r]], item_of[local->item[r]], local->value[r], me,
              local->timestamp[r]};
      send[users.OwnerOf(row.user)].push_back(row);
    }
    local = Interactions();
    by_user_rows = comm.AllToAll(send);
  }
  absl::StatusOr<int64_t> cross = MergeDuplicates(
      &by_user_rows, options.read.duplicates,
      [](const Row& r) { return (int64_t{r.user} << 32) | static_cast<uint32_t>(r.item); },
      [&](const Row& r) {
        return absl::StrCat(options.data_path, ": duplicate interaction of user '",
                            users.ids[r.user - user_base], "' with item number ", r.item,
                            " in two ranks' byte ranges");
      });
  RETURN_IF_ERROR(comm.Agree(cross.status()));
  result.duplicates_merged = comm.Sum(merged + *cross);
  result.train_interactions = comm.Sum(static_cast<int64_t>(by_user_rows.size()));
  result.users = num_users;
  result.items = num_items;
  if (result.train_interactions == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.data_path, ": no interactions (the file has no data rows)"));
  }
  double value_sum = 0;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int64_t latest = std::numeric_limits<int64_t>::min();
  for (const Row& r : by_user_rows) {
    value_sum += r.value;
    lo = std::min(lo, r.value);
    hi = std::max(hi, r.value);
    latest = std::max(latest, r.timestamp);
  }
  value_sum = comm.Sum(value_sum);
  lo = comm.Min(lo);
  hi = comm.Max(hi);
  latest = comm.Max(latest);
  const float mean_value =
      static_cast<float>(value_sum / static_cast<double>(result.train_interactions));
  const float global_mean = explicit_feedback ? mean_value : 0.0f;  // as TrainAls sets it

  // This process's users' rows (global item columns: the seen matrix), and the same
  // interactions at the owners of their items.
  CsrMatrix seen = ToCsr(
      by_user_rows, user_base, my_users, num_items, [](const Row& r) { return r.user; },
      [](const Row& r) { return r.item; });
  std::vector<Row> by_item_rows;
  {
    std::vector<std::vector<Row>> send(ranks);
    for (const Row& r : by_user_rows) send[items.OwnerOf(r.item)].push_back(r);
    by_user_rows = {};
    by_item_rows = comm.AllToAll(send);
  }
  tbb::parallel_sort(by_item_rows.begin(), by_item_rows.end(), [](const Row& a, const Row& b) {
    return a.item != b.item ? a.item < b.item : a.user < b.user;
  });
  const CsrMatrix by_item_global = ToCsr(
      by_item_rows, item_base, my_items, num_users, [](const Row& r) { return r.item; },
      [](const Row& r) { return r.user; });
  // Popularity of this process's items: plain counts (the baseline's scores), and the model's.
  Eigen::VectorXf counts(my_items), popularity(my_items);
  for (int32_t i = 0; i < my_items; ++i) counts[i] = static_cast<float>(by_item_global.RowSize(i));
  if (options.popularity.half_life_days > 0) {
    popularity.setZero();
    const double seconds = options.popularity.half_life_days * 86400.0;
    for (const Row& r : by_item_rows) {
      popularity[r.item - item_base] +=
          static_cast<float>(std::exp2(-static_cast<double>(latest - r.timestamp) / seconds));
    }
  } else {
    popularity = counts;
  }
  by_item_rows = {};
  result.rank_users = comm.AllGather(int64_t{my_users});
  result.rank_items = comm.AllGather(int64_t{my_items});
  result.rank_interactions = comm.AllGather(seen.nnz());
  // The arena's concurrency follows the CPU affinity; --threads caps it through global_control.
  result.rank_threads = comm.AllGather(static_cast<int64_t>(std::min<size_t>(
      static_cast<size_t>(tbb::this_task_arena::max_concurrency()),
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism))));

  // --- Exchange plans: which rows of the other side each half-step brings here.
  CsrMatrix by_user, by_item;
  std::vector<int32_t> needed_items, needed_users;
  if (options.exchange == FactorExchange::kBlock) {
    std::tie(needed_items, by_user) = Compact(seen);
    std::tie(needed_users, by_item) = Compact(by_item_global);
  } else {
    by_user = seen;
    by_item = by_item_global;
  }
  const RowExchange fetch_items = RowExchange::Plan(comm, options.exchange, needed_items, items);
  const RowExchange fetch_users = RowExchange::Plan(comm, options.exchange, needed_users, users);
  result.read_seconds = comm.Max(SecondsSince(read_start));

  // --- Iterations, from the single-process trainer's initial factors.
  FactorMatrix user_factors, item_factors;
  {
    std::vector<uint64_t> keys(users.ids.size());
    for (size_t r = 0; r < keys.size(); ++r) keys[r] = AlsRowKey(users.ids[r]);
    AlsInitialFactors(keys, AlsSide::kUsers, o, &user_factors);
    keys.resize(items.ids.size());
    for (size_t r = 0; r < keys.size(); ++r) keys[r] = AlsRowKey(items.ids[r]);
    AlsInitialFactors(keys, AlsSide::kItems, o, &item_factors);
  }
  Eigen::VectorXf user_bias, item_bias;
  if (explicit_feedback) {
    user_bias = Eigen::VectorXf::Zero(my_users);
    item_bias = Eigen::VectorXf::Zero(my_items);
  }
  const float reg = AlsRegularization(o);
  FactorMatrix other;  // the fetched rows of the other side
  Eigen::VectorXf other_bias;
  const auto train_start = Clock::now();
  for (int it = 1; it <= o.iterations; ++it) {
    if (options.kill_rank >= 0 && me == options.kill_rank && it == options.kill_at_iteration) {
      std::raise(SIGKILL);
    }
    const auto start = Clock::now();
    double exchange_seconds = 0;
    int64_t bytes = 0;
    auto timed = [&](auto&& f) {
      const auto t = Clock::now();
      f();
      exchange_seconds += SecondsSince(t);
    };
    // One half-step: the rows of `m` against the other side's rows, fetched from `from`.
    auto half_step = [&](const RowExchange& fetch, const FactorMatrix& from,
                         const Eigen::VectorXf& from_bias, const CsrMatrix& m, FactorMatrix* to,
                         Eigen::VectorXf* to_bias) {
      timed([&] {
        bytes += fetch.Fetch(comm, from, explicit_feedback ? &from_bias : nullptr, &other,
                             &other_bias);
      });
      if (explicit_feedback) {
        AlsExplicitHalfStep(m, other, other_bias, global_mean, o, to, to_bias);
      } else {
        Eigen::MatrixXf gram;
        timed([&] { gram = GlobalGram(comm, from, k, reg); });
        AlsImplicitHalfStep(m, other, gram, o, to);
      }
    };
    // Users against items, then items against the new users.
    half_step(fetch_items, item_factors, item_bias, by_user, &user_factors, &user_bias);
    half_step(fetch_users, user_factors, user_bias, by_item, &item_factors, &item_bias);
    DistributedIterationStats stats;
    stats.iteration = it;
    // Training error where the item rows were just solved: `other` holds the current users.
    if (explicit_feedback) {
      std::vector<double> per_item(static_cast<size_t>(my_items), 0.0);
      tbb::parallel_for(int32_t{0}, my_items, [&](int32_t i) {
        const auto cols = by_item.RowIndices(i);
        const auto vals = by_item.RowValues(i);
        double s = 0;
        for (size_t j = 0; j < cols.size(); ++j) {
          const double e = vals[j] - (global_mean + other_bias[cols[j]] + item_bias[i] +
                                      other.row(cols[j]).dot(item_factors.row(i)));
          s += e * e;
        }
        per_item[i] = s;
      });
      const double squared = std::accumulate(per_item.begin(), per_item.end(), 0.0);
      stats.train_rmse =
          std::sqrt(comm.Sum(squared) / static_cast<double>(result.train_interactions));
    }
    const int32_t finite = comm.Min(int32_t{user_factors.allFinite() && item_factors.allFinite()});
    if (finite == 0) {
      return absl::InternalError(absl::StrCat("ALS diverged at iteration ", it,
                                              " (non-finite factors); raise regularization"));
    }
    stats.seconds = comm.Max(SecondsSince(start));
    stats.exchange_seconds = comm.Max(exchange_seconds);
    const std::vector<int64_t> sent = comm.AllGather(bytes);
    stats.max_bytes_sent = *std::max_element(sent.begin(), sent.end());
    stats.mean_bytes_sent =
        static_cast<double>(std::accumulate(sent.begin(), sent.end(), int64_t{0})) / ranks;
    result.iterations.push_back(stats);
    if (on_iteration) on_iteration(stats);
  }
  result.train_seconds = comm.Max(SecondsSince(train_start));
  other = FactorMatrix();
  other_bias = Eigen::VectorXf();

  // --- The model's parts every process needs to rank the whole catalogue, and process 0 to
  // write it.
  const bool evaluate = !options.test_path.empty();
  const int root = evaluate ? -1 : 0;
  auto gather_rows = [&](const FactorMatrix& own, int r) {
    std::vector<float> flat(own.data(), own.data() + own.size());
    std::vector<float> all = comm.Gather(flat, r);
    FactorMatrix m;
    if (!all.empty() || r < 0 || me == r) {
      m = Eigen::Map<FactorMatrix>(all.data(), static_cast<Eigen::Index>(all.size() / k), k);
    }
    return m;
  };
  auto gather_vector = [&](const Eigen::VectorXf& own, int r) {
    std::vector<float> all = comm.Gather(std::vector<float>(own.data(), own.data() + own.size()), r);
    return Eigen::VectorXf(Eigen::Map<Eigen::VectorXf>(all.data(), static_cast<Eigen::Index>(all.size())));
  };
  FactorMatrix all_item_factors = gather_rows(item_factors, root);
  Eigen::VectorXf all_item_bias;
  if (explicit_feedback) all_item_bias = gather_vector(item_bias, root);
  Eigen::VectorXf all_popularity = gather_vector(popularity, root);

  if (evaluate) {
    // Each process reads its range of the test file; test rows go to the owner of their user.
    ReadStats test_stats;
    absl::StatusOr<Interactions> test = read_range(options.test_path, &test_stats);
    RETURN_IF_ERROR(comm.Agree(test.status()));
    const std::vector<int32_t> test_user = LookUpIds(comm, test->users, users);
    const std::vector<int32_t> test_item = LookUpIds(comm, test->items, items);
    std::vector<TestRow> rows;
    {
      std::vector<std::vector<TestRow>> send(ranks);
      for (int64_t r = 0; r < test->size(); ++r) {
        const std::string& u = test->users.External(test->user[r]);
        TestRow row;
        row.user_key = AlsRowKey(u);
        row.item_key = AlsRowKey(test->items.External(test->item[r]));
        row.user = test_user[test->user[r]];
        row.item = test_item[test->item[r]];
        row.value = test->value[r];
        row.source = me;
        row.timestamp = test->timestamp[r];
        send[HashOwner(u, ranks)].push_back(row);
      }
      test = Interactions();
      rows = comm.AllToAll(send);
    }
    absl::StatusOr<int64_t> test_merged = MergeDuplicates(
        &rows, options.read.duplicates,
        [](const TestRow& r) { return std::make_pair(r.user_key, r.item_key); },
        [&](const TestRow&) {
          return absl::StrCat(options.test_path,
                              ": duplicate interaction (one user and item) in two ranks' byte "
                              "ranges");
        });
    RETURN_IF_ERROR(comm.Agree(test_merged.status()));
    result.test_interactions = comm.Sum(static_cast<int64_t>(rows.size()));
    if (result.test_interactions == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.test_path, ": no interactions (the file has no data rows)"));
    }

    // Models of this process's users against the whole catalogue, matched to the test rows by
    // names of the global indices.
    std::vector<std::string> item_names(static_cast<size_t>(num_items));
    for (int32_t i = 0; i < num_items; ++i) item_names[i] = std::to_string(i);
    std::vector<std::string> user_names(static_cast<size_t>(my_users));
    for (int32_t u = 0; u < my_users; ++u) user_names[u] = std::to_string(user_base + u);
    FactorModel part;
    part.params = AlsModelParams(o);
    part.users = IdMap::FromExternals(user_names);
    part.items = IdMap::FromExternals(item_names);
    part.user_factors = std::move(user_factors);
    part.item_factors = std::move(all_item_factors);
    part.user_bias = user_bias;
    part.item_bias = all_item_bias;
    part.global_mean = global_mean;
    part.min_value = lo;
    part.max_value = hi;
    part.item_popularity = all_popularity;
    part.seen = std::move(seen);
    Interactions part_test;
    for (const TestRow& r : rows) {
      const int32_t u = part_test.users.GetOrAdd(
          r.user >= 0 ? std::to_string(r.user) : absl::StrCat("?", r.user_key));
      const int32_t i = part_test.items.GetOrAdd(
          r.item >= 0 ? std::to_string(r.item) : absl::StrCat("?", r.item_key));
      part_test.Add(u, i, r.value, r.timestamp);
    }
    auto evaluate_part = [&](const FactorModel& model) -> absl::StatusOr<EvalResult> {
      EvalSums sums;
      absl::Status status;
      if (!part_test.empty()) {
        absl::StatusOr<EvalSums> s = EvaluateSums(model, part_test, options.eval);
        if (s.ok()) {
          sums = std::move(*s);
        } else {
          status = s.status();
        }
      } else {
        sums.k = options.eval.k;
        sums.rating_metrics =
            model.params.feedback == Feedback::kExplicit && model.params.algorithm != Algorithm::kPopular;
        sums.items = model.num_items();
        sums.recommended.assign(static_cast<size_t>(model.num_items()), 0);
      }
      RETURN_IF_ERROR(comm.Agree(status));
      ReduceSums(comm, &sums);
      return FinishEvaluation(sums);
    };
    ASSIGN_OR_RETURN(result.eval, evaluate_part(part));
    // The popularity baseline of `recloop train`: plain counts, whatever the model's popularity.
    FactorModel popular;
    popular.params.algorithm = Algorithm::kPopular;
    popular.params.feedback = o.feedback;
    popular.users = std::move(part.users);
    popular.items = std::move(part.items);
    popular.item_popularity = gather_vector(counts, -1);
    popular.global_mean = mean_value;
    popular.min_value = lo;
    popular.max_value = hi;
    popular.seen = std::move(part.seen);
    ASSIGN_OR_RETURN(result.baseline, evaluate_part(popular));
    // Lent to the models above; back for the model's assembly.
    all_item_factors = std::move(part.item_factors);
    user_factors = std::move(part.user_factors);
    seen = std::move(popular.seen);
  }

  // --- Process 0 assembles the model.
  std::vector<std::string> user_ids = comm.GatherStrings(users.ids, 0);
  std::vector<std::string> item_ids = comm.GatherStrings(items.ids, 0);
  FactorMatrix all_user_factors = gather_rows(user_factors, 0);
  Eigen::VectorXf all_user_bias;
  if (explicit_feedback) all_user_bias = gather_vector(user_bias, 0);
  std::vector<int64_t> all_sizes;
  std::vector<int32_t> all_indices;
  std::vector<float> all_values;
  if (options.gather_seen) {
    std::vector<int64_t> row_sizes(static_cast<size_t>(my_users));
    for (int32_t u = 0; u < my_users; ++u) row_sizes[u] = seen.RowSize(u);
    all_sizes = comm.Gather(row_sizes, 0);
    all_indices = comm.Gather(seen.indices(), 0);
    all_values = comm.Gather(seen.values(), 0);
  }
  if (me == 0) {
    FactorModel& m = result.model;
    m.params = AlsModelParams(o);
    m.params.popularity_half_life_days = options.popularity.half_life_days;
    m.users = IdMap::FromExternals(std::move(user_ids));
    m.items = IdMap::FromExternals(std::move(item_ids));
    m.user_factors = std::move(all_user_factors);
    m.item_factors = std::move(all_item_factors);
    m.user_bias = std::move(all_user_bias);
    m.item_bias = std::move(all_item_bias);
    m.global_mean = global_mean;
    m.min_value = lo;
    m.max_value = hi;
    m.item_popularity = std::move(all_popularity);
    if (options.gather_seen) {
      std::vector<int64_t> indptr(all_sizes.size() + 1, 0);
      std::partial_sum(all_sizes.begin(), all_sizes.end(), indptr.begin() + 1);
      m.seen = CsrMatrix::FromArrays(num_users, num_items, std::move(indptr),
                                     std::move(all_indices), std::move(all_values));
    } else {
      m.seen = CsrMatrix();  // 0 x 0: SaveDistributedModel streams it
    }
  }
  result.local_seen = std::move(seen);
  result.split_transfers = comm.split_transfers();
  return result;
}

namespace {

// Seen rows travel to process 0 in blocks of at most this many entries (MPI counts are ints,
// and process 0 holds one block at a time).
constexpr int64_t kSeenBlockEntries = int64_t{1} << 24;
constexpr int kSeenTag = 7301;

// Sends `m`'s rows to process 0 in blocks: [rows, entries] then the row sizes, the indices and
// the values; a block of 0 rows ends.
void SendSeen(const Comm& comm, const CsrMatrix& m) {
  int32_t row = 0;
  for (;;) {
    int32_t end = row;
    while (end < m.rows() && (end == row || m.indptr()[end + 1] - m.indptr()[row] <= kSeenBlockEntries)) {
      ++end;
    }
    const int64_t header[2] = {end - row, m.indptr()[end] - m.indptr()[row]};
    MPI_Send(header, 2, MPI_INT64_T, 0, kSeenTag, comm.get());
    if (end == row) return;
    std::vector<int64_t> sizes(static_cast<size_t>(end - row));
    for (int32_t r = row; r < end; ++r) sizes[r - row] = m.RowSize(r);
    MPI_Send(sizes.data(), static_cast<int>(sizes.size()), MPI_INT64_T, 0, kSeenTag, comm.get());
    const int64_t begin = m.indptr()[row];
    MPI_Send(m.indices().data() + begin, static_cast<int>(header[1]), MPI_INT32_T, 0, kSeenTag,
             comm.get());
    MPI_Send(m.values().data() + begin, static_cast<int>(header[1]), MPI_FLOAT, 0, kSeenTag,
             comm.get());
    row = end;
  }
}

// Process 0's side of SendSeen: the next block from `from` (0 rows at its end).
SeenRows ReceiveSeen(const Comm& comm, int from) {
  int64_t header[2];
  MPI_Recv(header, 2, MPI_INT64_T, from, kSeenTag, comm.get(), MPI_STATUS_IGNORE);
  SeenRows b;
  if (header[0] == 0) return b;
  b.row_sizes.resize(static_cast<size_t>(header[0]));
  b.indices.resize(static_cast<size_t>(header[1]));
  b.values.resize(static_cast<size_t>(header[1]));
  MPI_Recv(b.row_sizes.data(), static_cast<int>(header[0]), MPI_INT64_T, from, kSeenTag,
           comm.get(), MPI_STATUS_IGNORE);
  MPI_Recv(b.indices.data(), static_cast<int>(header[1]), MPI_INT32_T, from, kSeenTag,
           comm.get(), MPI_STATUS_IGNORE);
  MPI_Recv(b.values.data(), static_cast<int>(header[1]), MPI_FLOAT, from, kSeenTag, comm.get(),
           MPI_STATUS_IGNORE);
  return b;
}

}  // namespace

absl::StatusOr<SavedModel> SaveDistributedModel(MPI_Comm mpi_comm,
                                                const DistributedTrainResult& result,
                                                const std::string& models_dir,
                                                const SaveModelOptions& options, bool proceed) {
  const Comm comm(mpi_comm);
  // 1: stream the seen rows; 0: process 0's model has them (gather_seen); -1: nothing to write.
  int mode = 1;
  if (comm.rank() == 0) {
    const bool gathered = result.model.seen.rows() > 0 || result.model.num_users() == 0;
    mode = !proceed ? -1 : gathered ? 0 : 1;
  }
  MPI_Bcast(&mode, 1, MPI_INT, 0, comm.get());
  if (mode == -1) return SavedModel{};
  if (comm.rank() != 0) {
    if (mode == 1) SendSeen(comm, result.local_seen);
    return SavedModel{};
  }
  if (mode == 0) return SaveModel(result.model, models_dir, options);
  // Process 0's own rows first, then each process's blocks in rank order (their users' global
  // indices follow in that order).
  int from = 0;
  bool own_sent = false;
  SaveModelOptions streamed = options;
  streamed.seen_source = [&]() -> absl::StatusOr<SeenRows> {
    while (from < comm.size()) {
      if (from == 0) {
        ++from;
        if (own_sent || result.local_seen.rows() == 0) continue;
        own_sent = true;
        SeenRows b;
        const CsrMatrix& m = result.local_seen;
        for (int32_t r = 0; r < m.rows(); ++r) b.row_sizes.push_back(m.RowSize(r));
        b.indices = m.indices();
        b.values = m.values();
        return b;
      }
      SeenRows b = ReceiveSeen(comm, from);
      if (!b.row_sizes.empty()) return b;
      ++from;  // that process has sent all its rows
    }
    return SeenRows{};
  };
  absl::StatusOr<SavedModel> saved = SaveModel(result.model, models_dir, streamed);
  // Processes whose rows the save did not take (it failed first) are still sending them.
  for (from = std::max(from, 1); from < comm.size(); ++from) {
    while (!ReceiveSeen(comm, from).row_sizes.empty()) {
    }
  }
  return saved;
}

}  // namespace recloop
