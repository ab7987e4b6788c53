// Retraining from an event store with a promotion gate: the one procedure behind the server's
// background retrainer (serving/retrainer.h) and `recloop train --events --base`.
//
// A retrain reads the live model's training interactions (carried forward from its seen matrix,
// minus users erased since) plus every event stored after the live model's last event
// (lineage.events_through_seq), holds out the most recent events (a temporal holdout, by log
// order), trains a candidate on the rest warm-started from the live factors, and evaluates the
// candidate and the live model on the same held-out events. The live model is evaluated as the
// server answers with it: its item factors, with each held-out user folded in from their history
// up to the holdout (engine/fold_in.h). The candidate passes the gate if it is not worse than
// the live model by more than `tolerance` (relative) on the gate metric, NDCG@k of the served
// ranking, for every kind of model (a rating model that predicts better but ranks worse is
// refused).
//
// The candidate's lineage records events_through_seq = the last event it trained on (the
// holdout's first seq - 1): the held-out events are then folded in at serving time like any
// newer event, and no event ever counts twice.
#ifndef RECLOOP_TRAINING_RETRAIN_H_
#define RECLOOP_TRAINING_RETRAIN_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/event_store.h"
#include "engine/factor_model.h"
#include "training/evaluate.h"
#include "training/train.h"

namespace recloop {

struct RetrainOptions {
  // Algorithm and hyper-parameters of the candidate. TrainOptionsFor(live) gives the live
  // model's own, with `iterations` warm-started iterations.
  TrainOptions train;
  TypeWeights type_weights = DefaultTypeWeights();
  // The holdout: this fraction of the new events (those after the live model's last event),
  // at least min_holdout_events and at most max_holdout_events of them. With fewer new events
  // than 2 * min_holdout_events there is no holdout: the candidate trains on everything and
  // the gate is skipped (reported as such).
  double holdout_fraction = 0.1;
  int64_t min_holdout_events = 50;
  int64_t max_holdout_events = 20'000;
  // Relative tolerance of the gate (0.01: at most 1% worse).
  double tolerance = 0.01;
  int k = 10;  // cut-off of NDCG@k
  // Stop reading at this seq (0 = the store's last event when the retrain starts).
  int64_t through_seq = 0;
};

// The live model's own algorithm and hyper-parameters with `iterations` iterations, for a warm
// start from it. Popularity models retrain as popularity models.
TrainOptions TrainOptionsFor(const FactorModel& live, int iterations);

struct GateResult {
  std::string metric;       // "ndcg@10" (the cut-off of RetrainOptions::k)
  double candidate = 0.0;   // the metric of each model on the holdout
  double live = 0.0;
  bool higher_is_better = true;
  bool skipped = false;     // no holdout (too few new events) or no live model
  bool passed = false;      // promote: passed or skipped
  std::string reason;       // one line for logs and the admin API
};

// The gate's verdict on the candidate's and the live model's evaluations on the same holdout:
// by NDCG@k, within `tolerance` (relative) of the live model or better passes; a candidate whose
// NDCG is not finite fails. Fills metric values, higher_is_better and passed of `gate`. Pure.
void JudgeGate(const EvalResult& candidate, const EvalResult& live, double tolerance,
               GateResult* gate);

struct RetrainResult {
  FactorModel model;          // the candidate, with lineage filled (not saved)
  GateResult gate;
  int64_t new_events = 0;     // events after the live model's last event
  int64_t holdout_events = 0;
  int64_t train_interactions = 0;
  double train_seconds = 0.0;
  double eval_seconds = 0.0;
};

// Retrains from `store` after `live` (null: from the events alone, no gate). Runs on the
// caller's thread and oneTBB arena (the server calls it from a low-priority thread in a small
// arena). Errors: FailedPrecondition if there are no new events to train on; the store's,
// trainer's and evaluator's errors.
absl::StatusOr<RetrainResult> Retrain(const EventStore& store, const FactorModel* live,
                                      const RetrainOptions& options);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_RETRAIN_H_
