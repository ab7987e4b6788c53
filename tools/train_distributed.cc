// `recloop train --distributed`: ALS across the processes of an MPI job
// (training/distributed_als.h). Every process runs this; process 0 reports and writes the model.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/train_command.h"
#include "training/distributed_als.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

// The options of `cmd` that the distributed trainer takes; InvalidArgument for the rest.
absl::StatusOr<DistributedOptions> OptionsOf(const TrainCommand& cmd, Logger* log) {
  if (!cmd.events.empty() || !cmd.base.empty()) {
    return absl::InvalidArgumentError(
        "--distributed trains on a --data file (read in byte ranges), not on an event store");
  }
  if (cmd.data.empty()) return absl::InvalidArgumentError("--distributed needs --data");
  if (!cmd.split.empty()) {
    return absl::InvalidArgumentError(
        "--distributed takes a held-out --test file, not --split (split the file beforehand)");
  }
  if (!cmd.algorithm.empty() && cmd.algorithm != "als") {
    return absl::InvalidArgumentError(
        absl::StrCat("--distributed trains als (explicit or implicit), not '", cmd.algorithm, "'"));
  }
  DistributedOptions o;
  // Every process guesses from the same bytes of the same file, so all agree.
  ASSIGN_OR_RETURN(const FeedbackKind feedback,
                   ResolveFeedbackKind(cmd.feedback, cmd.data, cmd.input, log));
  o.data_path = cmd.data;
  o.test_path = cmd.test;
  ASSIGN_OR_RETURN(o.read, MakeReadOptions(cmd.input, feedback));
  o.als = cmd.als;
  o.als.feedback = feedback;  // DistributedOptions tags the model by als.feedback
  o.popularity = cmd.popularity;
  o.eval.k = cmd.k;
  ASSIGN_OR_RETURN(o.exchange, ParseFactorExchange(cmd.exchange));
  // Test hook (tests/tools/distributed_test.cc): RECLOOP_TEST_KILL_RANK=R:I kills rank R at
  // the start of iteration I, as a crashed machine would.
  if (const char* kill = std::getenv("RECLOOP_TEST_KILL_RANK"); kill != nullptr) {
    const std::pair<std::string, std::string> parts = absl::StrSplit(kill, ':');
    if (!absl::SimpleAtoi(parts.first, &o.kill_rank) ||
        !absl::SimpleAtoi(parts.second, &o.kill_at_iteration)) {
      return absl::InvalidArgumentError("RECLOOP_TEST_KILL_RANK must be RANK:ITERATION");
    }
  }
  return o;
}

nlohmann::json DistributedJson(const DistributedTrainResult& r, FactorExchange exchange) {
  nlohmann::json iterations = nlohmann::json::array();
  for (const DistributedIterationStats& s : r.iterations) {
    nlohmann::json it = {{"iteration", s.iteration},
                         {"seconds", s.seconds},
                         {"exchange_seconds", s.exchange_seconds},
                         {"max_bytes_sent", s.max_bytes_sent},
                         {"mean_bytes_sent", s.mean_bytes_sent}};
    if (s.train_rmse > 0) it["train_rmse"] = s.train_rmse;
    iterations.push_back(std::move(it));
  }
  return {{"ranks", r.ranks},
          {"exchange", std::string(ToString(exchange))},
          {"read_seconds", r.read_seconds},
          {"rank_users", r.rank_users},
          {"rank_items", r.rank_items},
          {"rank_interactions", r.rank_interactions},
          {"rank_threads", r.rank_threads},
          {"iterations", std::move(iterations)}};
}

// Process 0's progress lines after training (the reading and the run).
void PrintTrained(const TrainCommand& cmd, const DistributedOptions& options,
                  const DistributedTrainResult& result) {
  if (!cmd.quiet) {
    std::fprintf(stderr,
                 "read %s on %d ranks: %lld interactions, %lld users, %lld items (%.2f s)\n",
                 cmd.data.c_str(), result.ranks, static_cast<long long>(result.train_interactions),
                 static_cast<long long>(result.users), static_cast<long long>(result.items),
                 result.read_seconds);
    if (result.duplicates_merged > 0) {
      std::fprintf(stderr, "  merged %lld duplicate (user, item) rows\n",
                   static_cast<long long>(result.duplicates_merged));
    }
    std::string threads;
    for (int64_t t : result.rank_threads) absl::StrAppend(&threads, threads.empty() ? "" : ", ", t);
    std::fprintf(stderr, "trained als on %d ranks (%s exchange; threads per rank: %s) in %.2f s\n",
                 result.ranks, std::string(ToString(options.exchange)).c_str(), threads.c_str(),
                 result.train_seconds);
  }
  if (result.rows_skipped > 0) {
    std::fprintf(stderr, "  skipped %lld malformed rows; first: %s\n",
                 static_cast<long long>(result.rows_skipped), result.first_skipped.c_str());
  }
}

// On process 0: names the inputs and metrics in the model's lineage and writes the model with
// its item index, the other processes sending their seen rows (training/pipeline.h's pieces).
absl::StatusOr<SavedModel> SaveOnRoot(const TrainCommand& cmd, DistributedTrainResult& result,
                                      Logger* log) {
  ModelLineage& lineage = result.model.lineage;
  LineageInputs inputs;
  inputs.data_path = cmd.data;
  inputs.data_rows = result.train_interactions;
  inputs.test_path = cmd.test;
  inputs.test_rows = result.test_interactions;
  ItemIndexOptions index = cmd.index_options;
  // Whatever fails here, the other processes are waiting to send their rows: they are told to
  // stop (SaveDistributedModel with proceed false) before this one fails.
  absl::Status ready = RecordInputs(inputs, &lineage);
  if (ready.ok()) ready = ParseIndexType(cmd.index).status();
  if (!ready.ok()) {
    (void)SaveDistributedModel(MPI_COMM_WORLD, result, cmd.out, SaveModelOptions(), false);
    return ready;
  }
  index.type = *ParseIndexType(cmd.index);
  lineage.train_interactions = result.train_interactions;
  lineage.test_interactions = result.test_interactions;
  if (result.eval) RecordMetrics(*result.eval, &lineage);
  ASSIGN_OR_RETURN(SavedModel saved, SaveDistributedModel(MPI_COMM_WORLD, result, cmd.out,
                                                          WithItemIndex(result.model, index, log)));
  log->Info("model %s written to %s", saved.version, saved.path);
  return saved;
}

// After training, on every process: process 0 reports and writes the model directory (with
// the others' seen rows). Returns the exit code.
int Report(const TrainCommand& cmd, const DistributedOptions& options,
           DistributedTrainResult& result, int rank) {
  if (rank != 0) {
    // Its part is to send its rows of the seen matrix.
    if (!cmd.out.empty()) {
      absl::StatusOr<SavedModel> s =
          SaveDistributedModel(MPI_COMM_WORLD, result, cmd.out, SaveModelOptions());
      if (!s.ok()) return 1;
    }
    return 0;
  }
  PrintTrained(cmd, options, result);
  CliLogger log(cmd.quiet);
  std::optional<SavedModel> saved;
  if (!cmd.out.empty()) {
    absl::StatusOr<SavedModel> s = SaveOnRoot(cmd, result, &log);
    if (!s.ok()) return Fail(s.status());
    saved = *s;
  }
  if (cmd.json) {
    nlohmann::json out = result.eval ? result.eval->ToJson() : nlohmann::json::object();
    out["algorithm"] = "als";
    out["feedback"] = std::string(ToString(options.als.feedback));
    out["train_seconds"] = result.train_seconds;
    if (result.baseline) out["baseline"] = result.baseline->ToJson();
    out["distributed"] = DistributedJson(result, options.exchange);
    if (saved) {
      out["model_version"] = saved->version;
      out["model_path"] = saved->path;
    }
    std::cout << out.dump() << std::endl;
  } else if (result.eval) {
    PrintTable("als", *result.eval, *result.baseline);
  } else if (!cmd.quiet) {
    std::fprintf(stderr, "no --test: no held-out metrics\n");
  }
  return 0;
}

}  // namespace

int RunDistributedTrain(const TrainCommand& cmd) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // Every process has the same command line, so every process reaches the same verdict; one
  // says it.
  auto finish = [&](int code) {
    MPI_Finalize();
    return code;
  };
  CliLogger log(cmd.quiet || rank != 0);
  absl::StatusOr<DistributedOptions> options = OptionsOf(cmd, &log);
  if (!options.ok()) return finish(rank == 0 ? Fail(options.status()) : 1);
  DistributedIterationCallback progress;
  if (rank == 0 && !cmd.quiet) {
    progress = [&](const DistributedIterationStats& s) {
      std::fprintf(stderr, "iteration %2d/%d", s.iteration, options->als.iterations);
      if (s.train_rmse > 0) std::fprintf(stderr, "  train_rmse %.4f", s.train_rmse);
      std::fprintf(stderr, "  %.2f s (exchange %.2f s)  sent %.1f MB/rank (max %.1f MB)\n",
                   s.seconds, s.exchange_seconds, s.mean_bytes_sent / 1e6,
                   static_cast<double>(s.max_bytes_sent) / 1e6);
    };
  }
  absl::StatusOr<DistributedTrainResult> result =
      TrainDistributed(MPI_COMM_WORLD, *options, progress);
  if (!result.ok()) return finish(rank == 0 ? Fail(result.status()) : 1);
  int code = Report(cmd, *options, *result, rank);
  // Everyone exits with process 0's verdict (its model write can fail).
  MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return finish(code);
}

}  // namespace recloop
