// Global ID numbering across the processes (distributed_partition.h).
#include "training/distributed_partition.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace recloop::distributed_internal {
namespace {

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

}  // namespace

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

}  // namespace recloop::distributed_internal
