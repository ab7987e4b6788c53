// The training pipeline: read (a file or an event store), split, train, evaluate against the
// popularity baseline, and save the model with its item index and lineage. Shared by
// `recloop train`, `tune`, `demo` and the distributed trainer, which use the whole run or its
// pieces. Progress goes to an injected Logger: kInfo lines are progress (a caller may drop them,
// as --quiet does), kWarning lines are what the user must see anyway (dropped input rows, a
// retrain's gate). The pipeline never prints.
//
// Thread safety: every function is safe to call from several threads on different runs (they
// share only what the Logger guarantees).
#ifndef RECLOOP_TRAINING_PIPELINE_H_
#define RECLOOP_TRAINING_PIPELINE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/logger.h"
#include "data/interactions.h"
#include "data/reader.h"
#include "engine/factor_model.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "training/bpmf.h"
#include "training/evaluate.h"
#include "training/retrain.h"
#include "training/train.h"

namespace recloop {

// What model to train, in the shape of the command line (the trainer's TrainOptions are built
// from it by MakeTrainOptions alone).
struct ModelSettings {
  Algorithm algorithm = Algorithm::kAls;
  FeedbackKind feedback = FeedbackKind::kExplicit;  // tags every algorithm's model
  AlsOptions als;                // als: its options
  BpmfOptions bpmf;              // bpmf (explicit feedback only)
  EaseOptions ease;              // ease (implicit preferences, or ratings as preferences)
  PopularityOptions popularity;  // every model's popular-items scores (cold start)
  // Ranking first (docs/training.md, "Ratings as preferences"): with explicit ratings, train
  // the served model as an implicit ALS model on RatingPreference of each rating (liked at or
  // above the scale's midpoint, disliked below), which ranks far better than a rating
  // predictor. What `train` does with ratings when no --algorithm is named.
  bool rank_ratings = false;
  // The model picks itself (docs/training.md, "Model selection"): train chooses among the
  // ranking models (SelectionCandidates) by NDCG@k on a validation split of the training data,
  // then fits the winner on all of it. What `train` does when no --algorithm is named.
  bool auto_select = false;
  // The time budget of that choice in seconds: candidates are tried cheapest first (als, then
  // ease by growing lambda), and once the budget is spent the rest are skipped (logged), the
  // best so far winning. The final fit on all the data is not counted.
  double select_budget_seconds = 300.0;
  // With rank_ratings on ratings: also fit the rating predictor (bpmf with `bpmf`'s options) on
  // the training ratings, kept in TrainReport::rating_head_model and saved with the ranking
  // model (SaveModelOptions::rating_head); with a test set its RMSE/MAE are reported beside the
  // ranking (TrainReport::rating_head) and recorded in the lineage as "rating_head/rmse" and
  // "rating_head/mae". The ranking model is what lists are made from.
  bool rating_head = false;
};

// One model the automatic choice tries.
struct SelectionCandidate {
  std::string name;  // e.g. "als", "ease(300)"
  TrainOptions options;
};

// The automatic choice tries ease only where it stays cheap: at most this many items (a fit
// costs O(items³): 80 s at 10K items on 2 cores) ...
inline constexpr int32_t kAutoEaseMaxItems = 10'000;
// ... and at most this much memory while training (EaseTrainingBytes).
inline constexpr double kAutoEaseMaxBytes = 4.0 * (1 << 30);

// EASE's training memory for `users` x `items`, in bytes: three items x items float matrices
// and every user's history as a dense vector of length items (training/ease.h). Pure.
inline double EaseTrainingBytes(int64_t users, int64_t items) {
  return 4.0 * static_cast<double>(users) * static_cast<double>(items) +
         12.0 * static_cast<double>(items) * static_cast<double>(items);
}

// What the automatic choice tries for `base` (a ranking model's options) on `users` x `items`:
// implicit als with base's options, and ease at lambda 100 and 1000 when items <= its cap
// (base.ease.max_items) and kAutoEaseMaxItems and EaseTrainingBytes <= kAutoEaseMaxBytes (a
// larger ease is trained only when asked for by name). Pure.
std::vector<SelectionCandidate> SelectionCandidates(const TrainOptions& base, int64_t users,
                                                    int32_t items);

// The choice: fits every candidate on 90% of `train` (a seeded random split) and evaluates it
// on the other 10% at cut-off k; returns the best by NDCG@k (the first on ties) and writes each
// candidate's figure into `metrics` as "select/NAME/ndcg@K". Candidates not started within
// `budget_seconds` are skipped. With one candidate, or fewer than 200 validation rows, returns
// the first (als) without fitting. Errors: the split's and the trainers'.
absl::StatusOr<TrainOptions> SelectRankingModel(const Interactions& train, const TrainOptions& base,
                                                int k, uint64_t seed, double budget_seconds,
                                                Logger* log,
                                                std::map<std::string, double>* metrics);

// The neutral rating of `data`'s ratings: the midpoint of their range, rounded to a half
// (3 on a 1-5 scale). kDefaultRatingNeutral for empty data. Pure.
float RatingNeutral(const Interactions& data);

// `ratings` with every value v replaced by RatingPreference(v, neutral). Pure.
Interactions RatingsAsPreferences(Interactions ratings, float neutral);

// The trainer's options for `settings`. Pure.
TrainOptions MakeTrainOptions(const ModelSettings& settings);

// One training run.
struct TrainRun {
  // The input: exactly one of a data file and an event store (data/event_store.h; all its
  // events, read as the server's retrainer reads them).
  std::string data;
  std::string events;
  ReadOptions read;   // how `data` and `test` are read
  std::string test;   // a held-out file, or
  std::string split;  // a split spec of the input (data/split.h), seeded by model.als.seed
  ModelSettings model;
  int k = 10;              // cut-off of the ranking metrics
  ItemIndexOptions index;  // the item index saved with the model
  std::string out;         // models directory (engine/model_io.h); empty: the model is not saved
  // With `events`: retrain as the server does (training/retrain.h) from this models directory's
  // current model, with model.als.iterations warm iterations, gated on a temporal holdout;
  // written to `out`, or out/refused/ if the gate refuses it. Only `events`, `out`, `index` and
  // model.als.iterations apply then.
  std::string base;
};

// What a run did.
struct TrainReport {
  FactorModel model;      // the trained model (its lineage filled if saved)
  int64_t data_rows = 0;  // interactions read
  int64_t train_interactions = 0;
  int64_t test_interactions = 0;
  double train_seconds = 0.0;          // TrainModel (or Retrain) alone
  std::optional<EvalResult> eval;      // on the test set, if there is one
  std::optional<EvalResult> baseline;  // the popularity model's, beside it
  std::optional<BpmfReport> bpmf;      // bpmf with a test set: the cost of thinning
  std::optional<EvalResult> rating_head;  // ModelSettings::rating_head: bpmf's on the test set
  std::optional<FactorModel> rating_head_model;  // ModelSettings::rating_head: the fitted bpmf
  std::optional<GateResult> gate;      // a retrain from `base`: its gate's verdict
  int64_t new_events = 0;              // a retrain from `base`: events newer than the base
  std::optional<SavedModel> saved;     // where the model was written
};

// Runs the whole pipeline. Returns InvalidArgument for bad settings (the trainer's own
// validation: TrainModel), NotFound for missing inputs, or the reader's, trainer's or writer's
// error.
absl::StatusOr<TrainReport> RunTraining(const TrainRun& run, Logger* log = StderrLog());

// The pieces, for callers that do only part of a run.

// Reads an interactions file, logging its size (kInfo) and the rows it skipped (kWarning).
absl::StatusOr<Interactions> ReadDataFile(const std::string& path, const ReadOptions& options,
                                          Logger* log = StderrLog());

// Trains `settings` on `train` (logging each iteration or every tenth sweep, kInfo) and, if
// `test` is not empty, evaluates the model and the popularity baseline on it at cut-off `k`.
// Fills model, train_seconds, eval, baseline and bpmf of the report, and the rating head
// (rating_head_model, and rating_head with a test set) when ModelSettings::rating_head applies.
absl::StatusOr<TrainReport> TrainAndEvaluate(const Interactions& train, const Interactions& test,
                                             const ModelSettings& settings, int k,
                                             Logger* log = StderrLog());

// `base` with write_extra_files set to build and save the item index of `model` (which must
// outlive the save) in the version directory, when the model has factors: the index is then
// published atomically with the factors it was built from. Logs the build (kInfo).
SaveModelOptions WithItemIndex(const FactorModel& model, const ItemIndexOptions& index, Logger* log,
                               SaveModelOptions base = {});

// The inputs a model's lineage names.
struct LineageInputs {
  std::string data_path;       // the data file, or the event store
  bool data_is_store = false;  // an event store is named by path and last event, not hashed
  int64_t data_rows = 0;
  std::string test_path;  // empty: none
  int64_t test_rows = 0;
};

// Fingerprints the input files (engine/model_io.h FingerprintFile) into `lineage`, with absolute
// paths. Returns the fingerprint's error (NotFound for a missing file).
absl::Status RecordInputs(const LineageInputs& inputs, ModelLineage* lineage);

// The numeric held-out metrics into lineage->metrics.
void RecordMetrics(const EvalResult& eval, ModelLineage* lineage);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_PIPELINE_H_
