// The typed MPI collectives of the distributed trainer (distributed_comm.h).
#include "training/distributed_comm.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/logger.h"

namespace recloop::distributed_internal {

std::vector<std::string> PackedStrings::Unpack(const std::vector<int32_t>& sizes,
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

absl::Status Comm::Agree(const absl::Status& local) const {
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

void Comm::Broadcast(std::string* s, int root) const {
  int64_t size = static_cast<int64_t>(s->size());
  MPI_Bcast(&size, 1, MPI_INT64_T, root, comm_);
  s->resize(static_cast<size_t>(size));
  MPI_Bcast(s->data(), CheckedInt(size), MPI_CHAR, root, comm_);
}

std::vector<std::string> Comm::GatherStrings(const std::vector<std::string>& mine,
                                             int root) const {
  PackedStrings packed;
  for (const std::string& s : mine) packed.Add(s);
  return PackedStrings::Unpack(Gather(packed.sizes, root), Gather(packed.bytes, root));
}

std::vector<std::string> Comm::AllToAllStrings(
    const std::vector<std::vector<std::string_view>>& send, std::vector<int64_t>* from) const {
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

void Comm::Move(const void* send, const std::vector<int64_t>& send_counts,
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

int Comm::CheckedInt(int64_t n) {
  if (n > INT_MAX) {
    // Fatal: the message must reach the operator before the job is torn down.
    StderrLog()->Error("distributed ALS: a count of %d exceeds MPI's int", n);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return static_cast<int>(n);
}

MPI_Datatype Comm::Bytes(size_t bytes) {
  MPI_Datatype t;
  MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &t);
  MPI_Type_commit(&t);
  return t;
}

}  // namespace recloop::distributed_internal
