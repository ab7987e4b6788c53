#include "training/retrain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/timer.h"
#include "data/event_interactions.h"
#include "engine/fold_in.h"
#include "engine/model_edit.h"
#include "engine/status_macros.h"
#include "tbb/parallel_for.h"
#include "training/evaluate.h"

namespace recloop {
namespace {

// `holdout` restricted to at most `max_users` users, chosen by a hash of their ID (the same
// users for the same IDs, whatever the order they arrived in).
Interactions SampleUsers(const Interactions& holdout, int64_t max_users) {
  if (holdout.users.size() <= max_users) return holdout;
  std::vector<std::pair<size_t, int32_t>> keyed;
  for (int32_t u = 0; u < holdout.users.size(); ++u) {
    keyed.emplace_back(std::hash<std::string>{}(holdout.users.External(u)), u);
  }
  std::nth_element(keyed.begin(), keyed.begin() + max_users, keyed.end());
  std::vector<uint8_t> keep(holdout.users.size(), 0);
  for (int64_t j = 0; j < max_users; ++j) keep[keyed[j].second] = 1;
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < holdout.size(); ++r) {
    if (keep[holdout.user[r]]) rows.push_back(r);
  }
  Interactions out = holdout.Subset(rows);
  out.Compact();
  return out;
}

// The live model as the server answers with it for the users of `holdout`: its item side, and
// each user folded in from their history in `train` (the live model's training interactions
// carried forward plus the events before the holdout). Users without history on the live
// model's items are left out (unknown: the evaluator skips them, as for the candidate).
absl::StatusOr<FactorModel> LiveAsServed(const FactorModel& live, const Interactions& train,
                                         const Interactions& holdout) {
  ASSIGN_OR_RETURN(const FoldIn fold_in, FoldIn::Create(live));
  std::vector<int32_t> live_item(train.items.size());
  for (int32_t i = 0; i < train.items.size(); ++i) {
    live_item[i] = live.items.Find(train.items.External(i)).value_or(-1);
  }
  // Rows of train by user (train is deduplicated, so sorted by user).
  std::vector<int64_t> begin(train.users.size() + 1, 0);
  for (int64_t r = 0; r < train.size(); ++r) ++begin[train.user[r] + 1];
  for (size_t u = 1; u < begin.size(); ++u) begin[u] += begin[u - 1];

  Interactions hist;
  hist.items = live.items;
  std::vector<FoldHistory> histories;  // train's order kept: train is deduplicated already
  for (int32_t h = 0; h < holdout.users.size(); ++h) {
    const auto u = train.users.Find(holdout.users.External(h));
    if (!u) continue;
    FoldHistory history(live);
    for (int64_t r = begin[*u]; r < begin[*u + 1]; ++r) {
      if (live_item[train.item[r]] >= 0) history.Add(live_item[train.item[r]], train.value[r]);
    }
    if (history.empty()) continue;
    const int32_t du = hist.users.GetOrAdd(holdout.users.External(h));
    for (int64_t j = 0; j < history.size(); ++j) {
      hist.Add(du, history.items()[j], history.values()[j], 0);
    }
    histories.push_back(std::move(history));
  }
  FactorModel m = ItemSide(live);
  m.users = hist.users;
  const int32_t n = hist.users.size();
  m.user_factors.setZero(n, live.item_factors.cols());
  if (live.has_biases()) m.user_bias.setZero(n);
  std::vector<absl::Status> errors(n);
  tbb::parallel_for(0, n, [&](int32_t u) {
    auto folded = histories[u].FoldWith(fold_in);
    if (!folded.ok()) {
      errors[u] = folded.status();
      return;
    }
    m.user_factors.row(u) = folded->factors.transpose();
    if (live.has_biases()) m.user_bias[u] = folded->bias;
  });
  for (const absl::Status& s : errors) RETURN_IF_ERROR(s);
  RETURN_IF_ERROR(hist.Deduplicate(DuplicatePolicy::kLast).status());
  m.seen = hist.ToUserItemMatrix();
  return m;
}

}  // namespace

void JudgeGate(const EvalResult& candidate, const EvalResult& live, double tolerance,
               GateResult* gate) {
  gate->higher_is_better = true;
  gate->candidate = candidate.ndcg;
  gate->live = live.ndcg;
  gate->passed = std::isfinite(gate->candidate) && gate->candidate >= gate->live * (1.0 - tolerance);
}

TrainOptions TrainOptionsFor(const FactorModel& live, int iterations) {
  TrainOptions t;
  const ModelParams& p = live.params;
  t.algorithm = p.algorithm;
  t.feedback = p.feedback;
  t.popularity.half_life_days = p.popularity_half_life_days;
  t.rating_neutral = p.rating_neutral;
  if (p.algorithm == Algorithm::kEase) t.ease.regularization = p.regularization;
  if (p.algorithm == Algorithm::kAls) {
    t.als.factors = p.factors;
    t.als.iterations = iterations;
    t.als.regularization = p.regularization;
    t.als.bias_regularization = p.bias_regularization > 0 ? p.bias_regularization
                                                          : t.als.bias_regularization;
    if (p.alpha > 0) t.als.alpha = p.alpha;
    t.als.confidence = p.confidence;
    if (p.cg_steps > 0) t.als.cg_steps = p.cg_steps;
    t.als.cholesky = p.cholesky;
    t.als.seed = p.seed;
  }
  if (p.algorithm == Algorithm::kBpmf) {
    // A Markov chain has nothing to warm-start from: a retrain samples a new chain, as long as
    // the live one's (`iterations` does not apply).
    t.bpmf.factors = p.factors;
    t.bpmf.burn_in = p.burn_in;
    t.bpmf.samples = p.samples;
    t.bpmf.served_samples = p.served_samples;
    t.bpmf.noise_precision = p.noise_precision;
    t.bpmf.user_noise_dof = p.user_noise_dof;
    t.bpmf.item_noise_dof = p.item_noise_dof;
    t.bpmf.seed = p.seed;
  }
  return t;
}

absl::StatusOr<RetrainResult> Retrain(const EventStore& store, const FactorModel* live,
                                      const RetrainOptions& options) {
  if (!(options.holdout_fraction >= 0 && options.holdout_fraction < 1)) {
    return absl::InvalidArgumentError("holdout_fraction must be in [0, 1)");
  }
  if (!(options.tolerance >= 0) || options.k < 1) {
    return absl::InvalidArgumentError("tolerance must be >= 0 and k >= 1");
  }
  const FeedbackKind feedback = options.train.feedback;
  const int64_t after = live != nullptr ? EventsThroughSeq(*live, store) : 0;
  int64_t through = options.through_seq;
  if (through <= 0) {
    ASSIGN_OR_RETURN(through, store.LastSeq());
  }
  if (through <= after) {
    return absl::FailedPreconditionError(
        absl::StrCat("no new events since the live model (which includes events up to seq ",
                     after, ")"));
  }
  // The holdout: the newest events by log order (seq gaps left by erasures make this a count of
  // seqs, close to a count of events).
  const int64_t span = through - after;
  int64_t holdout_n = 0;
  if (live != nullptr && span >= 2 * options.min_holdout_events) {
    holdout_n = std::clamp<int64_t>(
        static_cast<int64_t>(std::llround(options.holdout_fraction * static_cast<double>(span))),
        options.min_holdout_events, options.max_holdout_events);
  }
  const int64_t cut = through - holdout_n;

  RetrainResult result;
  result.new_events = span;
  EventDataOptions data_options;
  data_options.feedback = feedback;
  data_options.type_weights = options.type_weights;
  if (options.train.rating_neutral > 0) data_options.rating_neutral = options.train.rating_neutral;
  data_options.after_seq = after;
  data_options.through_seq = cut;
  data_options.base = live;
  if (live != nullptr) {
    ASSIGN_OR_RETURN(const auto erasures, store.Erasures(after));
    for (const auto& [user, seq] : erasures) data_options.dropped_users.push_back(user);
  }
  EventDataStats stats;
  ASSIGN_OR_RETURN(Interactions train, EventInteractions(store, data_options, &stats));
  if (train.empty()) return absl::FailedPreconditionError("no interactions to train on");

  TrainHooks run;
  run.warm_start = live;
  const auto train_start = SteadyClock::now();
  ASSIGN_OR_RETURN(result.model, TrainModel(train, options.train, run));
  result.train_seconds = SecondsSince(train_start);
  result.train_interactions = train.size();
  ModelLineage& lineage = result.model.lineage;
  lineage.data.path = store.path();
  lineage.data.rows = train.size();
  lineage.train_interactions = train.size();
  lineage.events_through_seq = cut;
  lineage.events_store_id = store.id();
  if (live != nullptr) lineage.parent_version = live->lineage.version;

  GateResult& gate = result.gate;
  // Ranking first: every kind of model is judged by the list it serves, never by RMSE.
  gate.higher_is_better = true;
  gate.metric = absl::StrCat("ndcg@", options.k);
  Interactions holdout;
  if (holdout_n > 0) {
    EventDataOptions h;
    h.feedback = feedback;
    h.type_weights = options.type_weights;
    h.rating_neutral = data_options.rating_neutral;
    h.after_seq = cut;
    h.through_seq = through;
    ASSIGN_OR_RETURN(holdout, EventInteractions(store, h));
    holdout = SampleUsers(holdout, /*max_users=*/2000);
  }
  result.holdout_events = holdout.size();
  if (live == nullptr || holdout.empty()) {
    gate.skipped = true;
    gate.passed = true;
    gate.reason = live == nullptr ? "no live model to compare with"
                                  : absl::StrCat("too few new events for a holdout (", span,
                                                 ", need ", 2 * options.min_holdout_events, ")");
    lineage.gate = "skipped";
    return result;
  }
  const auto eval_start = SteadyClock::now();
  EvalOptions eval;
  eval.k = options.k;
  if (gate.higher_is_better) eval.relevance_threshold = 1e-6f;  // negative feedback is not relevant
  ASSIGN_OR_RETURN(const EvalResult candidate, Evaluate(result.model, holdout, eval));
  EvalResult current;
  if (live->has_factors()) {
    ASSIGN_OR_RETURN(const FactorModel served, LiveAsServed(*live, train, holdout));
    ASSIGN_OR_RETURN(current, Evaluate(served, holdout, eval));
  } else {
    ASSIGN_OR_RETURN(current, Evaluate(*live, holdout, eval));
  }
  result.eval_seconds = SecondsSince(eval_start);
  if (gate.higher_is_better && candidate.users == 0 && current.users == 0) {
    gate.skipped = true;
    gate.passed = true;
    gate.reason = absl::StrCat("no user of the ", holdout.size(),
                               " held-out events has history before them to rank from");
    lineage.gate = "skipped";
    return result;
  }
  JudgeGate(candidate, current, options.tolerance, &gate);
  gate.reason = absl::StrFormat("%s on %d held-out events: candidate %.4f, live %s %.4f (tolerance %.1f%%)",
                                gate.metric, holdout.size(), gate.candidate, live->lineage.version,
                                gate.live, 100.0 * options.tolerance);
  lineage.gate = gate.passed ? "passed" : "refused";
  lineage.metrics[absl::StrCat("gate_", gate.metric)] = gate.candidate;
  lineage.test_interactions = holdout.size();
  return result;
}

}  // namespace recloop
