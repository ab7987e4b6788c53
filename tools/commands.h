// The subcommands of the `recloop` tool. Each takes an options struct filled by the argument
// parser in recloop_main.cc and returns the process exit code; results go to stdout, progress
// and errors to stderr.
#ifndef RECLOOP_TOOLS_COMMANDS_H_
#define RECLOOP_TOOLS_COMMANDS_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "base/timer.h"
#include "data/generator.h"
#include "data/reader.h"
#include "engine/item_index.h"
#include "serving/serve.h"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {

struct InputFlags {
  std::string format = "auto";      // auto|ml100k|dat|csv|tsv
  bool skip_bad_rows = false;
  std::string duplicates;           // last|sum|error; empty: last (explicit) or sum (implicit)
};

// The reader settings of the input flags; an empty `duplicates` takes the feedback kind's
// default. Returns InvalidArgument for an unknown format or policy.
absl::StatusOr<ReadOptions> MakeReadOptions(const InputFlags& f, Feedback feedback);

// Reads an interactions file, reporting its size on stderr unless `quiet` (skipped rows are
// reported even then: they are data the user asked us to drop).
absl::StatusOr<Interactions> ReadDataFile(const std::string& path, const ReadOptions& options,
                                          bool quiet);

// Prints "recloop: MESSAGE" on stderr; returns 1, the exit code of a failed command.
int Fail(const absl::Status& s);

// Prints the held-out metrics of a model beside the popularity baseline's, as a table on stdout.
void PrintTable(const std::string& name, const EvalResult& model, const EvalResult& baseline);

struct TrainCommand;
// Builds the item index of `model` with the command's settings into a version directory.
absl::Status WriteIndex(const TrainCommand& cmd, const FactorModel& model,
                        const std::string& version_dir);

// Wall seconds since `start`.

// The algorithm a command trains when none is named: the most accurate for the feedback kind
// (BENCHMARKS.md): bpmf for explicit ratings, als for implicit feedback.
inline std::string AlgorithmOrDefault(const std::string& given, Feedback feedback) {
  if (!given.empty()) return given;
  return feedback == Feedback::kExplicit ? "bpmf" : "als";
}

struct GenerateCommand {
  GeneratorOptions generator;
  std::string feedback = "explicit";
  std::string out;
};

struct TrainCommand {
  std::string data;
  std::string events;  // or an event store (data/event_store.h): trains on all its events
  // With events: retrain as the server does (training/retrain.h) from the current model of this
  // models directory: its training interactions plus the newer events, warm-started, gated on
  // a temporal holdout; written to `out` (under out/refused/ if the gate refuses it).
  std::string base;
  std::string test;   // a held-out file, or
  std::string split;  // a split spec (data/split.h)
  InputFlags input;
  // als, bpmf or popular; empty: bpmf for explicit feedback (the most accurate), als for
  // implicit.
  std::string algorithm;
  std::string feedback = "explicit";
  AlsOptions als;
  BpmfOptions bpmf;  // bpmf: factors and seed come from als (--factors, --seed) when given
  PopularityOptions popularity;  // cold-start / popular-items scores (time decay)
  int k = 10;
  bool json = false;
  bool quiet = false;
  std::string index = "auto";  // item index saved with the model: auto, exact or hnsw
  ItemIndexOptions index_options;  // its HNSW settings (type comes from `index`)
  std::string out;  // models directory: a new version is added and `current` points at it
                    // (engine/model_io.h); empty: the model is not saved
  // Train ALS across the processes of an MPI job (mpirun -np P recloop train --distributed):
  // training/distributed_als.h. `exchange`: block or allgather.
  bool distributed = false;
  std::string exchange = "block";
};

// `recloop train --distributed`, on every process of the MPI job (tools/train_distributed.cc).
int RunDistributedTrain(const TrainCommand& cmd);

struct EventsExportCommand {
  std::string store;  // the event store (`recloop serve --events PATH`)
  std::string out;    // CSV: user,item,type,value,timestamp
};

// Loads item titles and categories into a models directory's catalogue (MODELS/catalog.db, the
// one `recloop serve --models MODELS` reads at start), keeping each item's availability.
struct CatalogCommand {
  std::string models;
  std::string catalog;           // or this catalogue file (serve --catalog)
  std::string movielens_items;   // MovieLens 100K u.item
};

struct EvalCommand {
  std::string model;  // a models directory (its `current`) or one version directory
  std::string test;
  InputFlags input;
  int k = 10;
  bool json = false;
};

struct ModelInfoCommand {
  std::string model;  // a models directory (its `current`) or one version directory
  bool json = false;  // print the metadata as JSON instead of Protobuf text format
};

struct DemoCommand {
  GeneratorOptions generator;
  bool quiet = false;
  // Saves the model there, with a catalogue whose categories are the planted clusters
  // ("cluster-3"), and prints curl lines to try against it.
  std::string models;
  bool serve = false;  // then serves it (needs models)
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
};

struct RecommendCommand {
  std::string model;  // a models directory (its `current`) or one version directory
  std::string user;   // one user, or
  bool all = false;   // every user of the model (needs out)
  int n = 10;
  bool json = false;
  std::string out;  // --all: CSV with header user,rank,item,score
};

struct SimilarCommand {
  std::string model;
  std::string item;
  int n = 10;
  bool json = false;
};

struct ServeCommand {
  ServeOptions serve;
  std::string api_key_file;  // the API key's file; else RECLOOP_API_KEY; else no auth
  int64_t idle_timeout_ms = 30'000;
  int64_t read_timeout_ms = 10'000;
  int64_t drain_timeout_ms = 10'000;
};

int RunRecommend(const RecommendCommand& cmd);
int RunServeCommand(ServeCommand cmd);
int RunSimilar(const SimilarCommand& cmd);
int RunGenerate(const GenerateCommand& cmd);
int RunTrain(const TrainCommand& cmd);
int RunEventsExport(const EventsExportCommand& cmd);
int RunCatalog(const CatalogCommand& cmd);
int RunEval(const EvalCommand& cmd);
int RunModelInfo(const ModelInfoCommand& cmd);
int RunDemo(const DemoCommand& cmd);

}  // namespace recloop

#endif  // RECLOOP_TOOLS_COMMANDS_H_
