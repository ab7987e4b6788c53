// Evaluation of the distributed trainer's model on a held-out file (internal to
// training/distributed_*.cc): each process reads its range of the test file, the test rows go
// to the owners of their users, each process scores its own users against the whole catalogue,
// and the metric sums are reduced (training/evaluate.h EvalSums). Collectives
// (distributed_comm.h); every process returns the same error.
#ifndef RECLOOP_TRAINING_DISTRIBUTED_EVAL_H_
#define RECLOOP_TRAINING_DISTRIBUTED_EVAL_H_

#include "absl/status/status.h"
#include "training/distributed_als.h"
#include "training/distributed_comm.h"
#include "training/distributed_state.h"
#include "training/evaluate.h"

namespace recloop::distributed_internal {

// Adds every process's sums into `sums` (on every process).
void ReduceSums(const Comm& comm, EvalSums* sums);

// Fills result->eval, result->baseline and result->test_interactions from options.test_path.
// `catalogue` must be gathered on every process. The factors, the catalogue's item factors and
// data->seen are lent to the models evaluated and are back, unchanged, on return (on success).
// InvalidArgument for a test file without data rows, or as ReadInteractionsRange.
absl::Status EvaluateDistributed(const Comm& comm, const DistributedOptions& options,
                                 Partitioned* data, Factors* factors, Catalogue* catalogue,
                                 DistributedTrainResult* result);

}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_EVAL_H_
