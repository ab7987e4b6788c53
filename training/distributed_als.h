// ALS across the processes of an MPI job (`mpirun -np P recloop train --distributed`), for
// interactions that outgrow one machine. Every process runs TrainDistributed collectively:
//
//  - Input: each process reads its own byte range of the file (data/reader.h
//    ReadInteractionsRange); no process holds the whole input.
//  - IDs: an external ID belongs to the process its hash names (XXH64 mod P); each process
//    numbers its own IDs (sorted), and the global dense index of an ID is its owner's offset plus
//    its place there. So process p owns the contiguous index ranges [offset_p, offset_{p+1}) of
//    users and of items, solves those rows and keeps their interactions (by user and by item).
//  - Iterations: each half-step sends a process only the opposite-side rows that its own rows
//    touch (the in/out blocks of Spark's ALS), or, as the baseline, every process the whole
//    opposite side (allgather). Implicit ALS's YᵀY is an allreduce. Rows are solved by the same
//    code as the single-process trainer (training/als.h), from the same initial factors (seeded
//    by external ID), so any P gives the single-process model up to floating-point rounding.
//  - Evaluation: each process scores its own test users against the whole catalogue; the
//    metric sums are reduced (training/evaluate.h EvalSums).
//  - Output: process 0 assembles the model, as TrainModel returns it.
//
// Errors: a failure in one process (a malformed row in its range, an unreadable file) is agreed
// on at the next step, and every process returns the same error, "rank R: cause". A process that
// dies is mpirun's to report: it then stops the other processes (no process waits forever).
#ifndef RECLOOP_TRAINING_DISTRIBUTED_ALS_H_
#define RECLOOP_TRAINING_DISTRIBUTED_ALS_H_

#include <mpi.h>

#include <climits>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "data/reader.h"
#include "engine/factor_model.h"
#include "engine/model_io.h"
#include "training/als.h"
#include "training/evaluate.h"
#include "training/popularity.h"

namespace recloop {

// How the opposite side's factor rows reach the processes that need them in a half-step.
enum class FactorExchange {
  kBlock,      // only the rows a process's own rows touch (Spark's in/out blocks)
  kAllgather,  // every process gets the whole opposite side (the baseline)
};

absl::StatusOr<FactorExchange> ParseFactorExchange(std::string_view s);  // block|allgather
std::string_view ToString(FactorExchange e);

struct DistributedOptions {
  std::string data_path;  // the training file, read in P byte ranges
  std::string test_path;  // held-out file, read the same way; empty: no evaluation
  ReadOptions read;       // as for ReadInteractions (both files)
  AlsOptions als;         // explicit or implicit ALS, as TrainAls takes it
  PopularityOptions popularity;  // item_popularity of the model (and the baseline's scores)
  EvalOptions eval;              // cut-off of the ranking metrics
  FactorExchange exchange = FactorExchange::kBlock;
  // Process 0's model includes the seen matrix (every training interaction: 12 bytes each),
  // gathered from all processes. Off by default: each process keeps its users' rows
  // (DistributedTrainResult::local_seen) and SaveDistributedModel streams them to the file.
  bool gather_seen = false;
  // The most elements (interactions, floats, ID bytes) one process sends another in one MPI
  // call, at most INT_MAX (MPI's counts are ints): larger transfers go in rounds. Tests lower it
  // to run the rounds on small data.
  int64_t max_message_elements = INT_MAX;
  // Test hook: the process of this rank kills itself (SIGKILL) at the start of iteration
  // kill_at_iteration, as a crashed machine would. -1: never.
  int kill_rank = -1;
  int kill_at_iteration = 1;
};

// Reported on every process after every iteration (the same figures everywhere).
struct DistributedIterationStats {
  int iteration = 0;            // 1-based
  double seconds = 0;           // wall time of the slowest process
  double exchange_seconds = 0;  // of which in factor exchange and allreduce (slowest process)
  double train_rmse = 0;        // explicit only: RMSE on the training ratings
  // Factor bytes each process sent to the others this iteration (both half-steps): the largest
  // and the mean over processes. Allgather counts what a process's rows must reach: its rows
  // times P-1.
  int64_t max_bytes_sent = 0;
  double mean_bytes_sent = 0;
};

struct DistributedTrainResult {
  int ranks = 0;
  // Process 0: the trained model, as TrainModel returns it (IDs, factors, biases, popularity,
  // value range), with the seen matrix only if gather_seen. Other processes: empty.
  FactorModel model;
  // Every process: its users' rows of the seen matrix (users in global order, global item
  // indices), which SaveDistributedModel writes.
  CsrMatrix local_seen;
  // On every process when a test file was given: the model's and the popularity baseline's
  // held-out metrics, over all test users.
  std::optional<EvalResult> eval;
  std::optional<EvalResult> baseline;
  int64_t rows_read = 0;           // data rows accepted, all ranges
  int64_t rows_skipped = 0;        // malformed rows skipped (skip_bad_rows)
  int64_t duplicates_merged = 0;   // within and across ranges
  std::string first_skipped;       // "rank R: FILE:LINE: reason" of a skipped row, if any
  int64_t train_interactions = 0;  // after merging duplicates
  int64_t test_interactions = 0;
  int64_t users = 0, items = 0;
  // Per process: its users, items and interactions (the balance of the partition).
  std::vector<int64_t> rank_users, rank_items, rank_interactions;
  // Per process: the threads its oneTBB arena runs (mpirun's default binding to one core leaves
  // a process one thread: --bind-to none, or --map-by ...:PE=N, gives it more).
  std::vector<int64_t> rank_threads;
  // Transfers (shuffles of interactions and IDs, gathers of the model) too large for one MPI
  // call, which went in rounds of max_message_elements (on this process).
  int64_t split_transfers = 0;
  double read_seconds = 0;   // reading, numbering and partitioning (slowest process)
  double train_seconds = 0;  // the iterations
  std::vector<DistributedIterationStats> iterations;
};

using DistributedIterationCallback = std::function<void(const DistributedIterationStats&)>;

// Trains ALS on options.data_path across the processes of `comm`; every process of comm must
// call it with the same options. Returns the same error on every process: InvalidArgument for
// bad options, a malformed file (naming the rank, file and line) or empty data; Internal if the
// factors stop being finite. Uses the oneTBB arena of the caller within each process; MPI must
// be initialised (MPI_THREAD_FUNNELED is enough: only the calling thread communicates).
absl::StatusOr<DistributedTrainResult> TrainDistributed(
    MPI_Comm comm, const DistributedOptions& options,
    const DistributedIterationCallback& on_iteration = nullptr);

// Writes process 0's result.model as SaveModel does (engine/model_io.h), with the seen matrix
// streamed from every process's local_seen in rank order, a block at a time, so that no process
// holds all of it (a model trained with gather_seen is written as it is). Collective: every
// process calls it with its result; `models_dir` and `options` matter on process 0 only. With
// proceed false on process 0 nothing is written (for a caller that failed before the write: the
// others still return). Returns SaveModel's result on process 0 and an empty SavedModel
// elsewhere.
absl::StatusOr<SavedModel> SaveDistributedModel(MPI_Comm comm, const DistributedTrainResult& result,
                                                const std::string& models_dir,
                                                const SaveModelOptions& options,
                                                bool proceed = true);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_DISTRIBUTED_ALS_H_
