// `recloop train`: its flags as a struct, shared by the single-process run
// (tools/train_command.cc) and the MPI run (tools/train_distributed.cc).
#ifndef RECLOOP_TOOLS_TRAIN_COMMAND_H_
#define RECLOOP_TOOLS_TRAIN_COMMAND_H_

#include <string>

#include "engine/item_index.h"
#include "tools/cli_common.h"
#include "training/als.h"
#include "training/bpmf.h"
#include "training/ease.h"
#include "training/popularity.h"

namespace recloop {

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
  double select_budget = 300.0;    // ModelSettings::select_budget_seconds
  bool no_rating_head = false;     // without --algorithm on ratings: no bpmf rating head
  std::string feedback = "auto";   // explicit, implicit or auto (data/feedback_guess.h)
  std::string confidence = "log";  // implicit: linear or log (engine/factor_model.h Confidence)
  EaseOptions ease;
  AlsOptions als;
  BpmfOptions bpmf;  // bpmf: factors and seed come from als (--factors, --seed) when given
  PopularityOptions popularity;  // cold-start / popular-items scores (time decay)
  int k = 10;
  bool json = false;
  bool quiet = false;
  std::string index = "auto";      // item index saved with the model: auto, exact or hnsw
  ItemIndexOptions index_options;  // its HNSW settings (type comes from `index`)
  std::string out;  // models directory: a new version is added and `current` points at it
                    // (engine/model_io.h); empty: the model is not saved
  // Train ALS across the processes of an MPI job (mpirun -np P recloop train --distributed):
  // training/distributed_als.h. `exchange`: block or allgather.
  bool distributed = false;
  std::string exchange = "block";
};

// `recloop train --distributed`, on every process of the MPI job. Returns the exit code.
int RunDistributedTrain(const TrainCommand& cmd);

}  // namespace recloop

#endif  // RECLOOP_TOOLS_TRAIN_COMMAND_H_
