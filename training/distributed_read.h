// Sharded reading and the partition of the distributed trainer (internal to
// training/distributed_*.cc): each process reads its byte range of a file, the IDs are numbered
// globally, and the interactions travel to the owners of their users and of their items. All
// functions are collectives (distributed_comm.h) and return the same error on every process.
#ifndef RECLOOP_TRAINING_DISTRIBUTED_READ_H_
#define RECLOOP_TRAINING_DISTRIBUTED_READ_H_

#include <string>

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "data/reader.h"
#include "training/distributed_als.h"
#include "training/distributed_comm.h"
#include "training/distributed_state.h"

namespace recloop::distributed_internal {

// This process's byte range of `path` (the file cut in comm.size() near-equal ranges), read as
// ReadInteractionsRange reads it. Not collective; NotFound if the file's size is unknown.
absl::StatusOr<Interactions> ReadRange(const Comm& comm, const std::string& path,
                                       const ReadOptions& options, ReadStats* stats);

// Reads this process's range of options.data_path and records the reading figures of every
// process in `result` (rows read and skipped, the lowest rank's first skipped row). `stats`
// gets this process's own figures.
absl::StatusOr<Interactions> ReadTraining(const Comm& comm, const DistributedOptions& options,
                                          ReadStats* stats, DistributedTrainResult* result);

// Numbers the IDs of every process's `local` (freed here) and moves the interactions to the
// owners of their users and items, merging duplicates across ranges. `merged_locally`: the
// duplicates this process's read merged. Records counts and the partition's balance in
// `result`. InvalidArgument for duplicates under kError or no interactions at all.
absl::StatusOr<Partitioned> Partition(const Comm& comm, const DistributedOptions& options,
                                      Interactions local, int64_t merged_locally,
                                      DistributedTrainResult* result);

}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_READ_H_
