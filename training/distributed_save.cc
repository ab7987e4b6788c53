// Writing the distributed trainer's model (SaveDistributedModel in distributed_als.h): the
// seen rows stream from every process to process 0, which writes them through SaveModel.
#include <algorithm>
#include <vector>

#include "training/distributed_als.h"
#include "training/distributed_comm.h"

namespace recloop {
namespace {

using distributed_internal::Comm;

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
