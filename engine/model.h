// Model: the interface every recommendation model implements, in the manner of implicit's
// RecommenderBase and FAISS's Index. A model is fitted on a TrainingData (engine types only, so
// that the engine stays below data/ and training/), folds a user's history into the state it
// scores with (UserState), scores every item or searches the top k for such a user, and is
// saved and loaded through engine/model_io.h with its lineage.
//
// The data of a model is a FactorModel (engine/factor_model.h): what model_io stores and what
// serving reads. FactorModelBase implements folding and scoring for models whose users are
// factor vectors (ALS, BPMF) or that only rank by popularity; a model whose users are something
// else (an item-item model such as EASE, whose folded user is the history itself and whose
// scores are history · B) overrides Fold and Score.
//
// Implementations live where they are trained (training/trainers.h registers them by name in a
// ModelRegistry, engine/model_registry.h).
#ifndef RECLOOP_ENGINE_MODEL_H_
#define RECLOOP_ENGINE_MODEL_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "Eigen/Core"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/csr_matrix.h"
#include "engine/factor_model.h"
#include "engine/fold_in.h"
#include "engine/id_map.h"
#include "engine/model_io.h"
#include "engine/top_k.h"

namespace recloop {

// What a model is fitted on. Plain data, owned: Fit takes it by value and keeps by_user as the
// model's seen matrix.
struct TrainingData {
  IdMap users;
  IdMap items;
  CsrMatrix by_user;  // users x items: the deduplicated interactions (nnz > 0)
  CsrMatrix by_item;  // its transpose
  // items.size(): every model's cold-start ranking (FactorModel::item_popularity), computed by
  // the caller, which has the timestamps that a decayed count needs.
  Eigen::VectorXf item_popularity;
  // How item_popularity was computed (recorded in the model's params): 0 = plain counts.
  double popularity_half_life_days = 0.0;
};

// Checks that `data`'s shapes agree: the ID maps against the matrices, by_item against by_user,
// item_popularity against the items. Returns InvalidArgument naming the first mismatch, or for
// empty data ("no training interactions"). Thread-safe (pure).
absl::Status ValidateTrainingData(const TrainingData& data);

// A user as a model scores them: what Model::Fold makes of a history. Each model fills the part
// it scores with; callers look only at cold_start.
struct UserState {
  // True when the history was empty (or the model has nothing personal to fold, as a
  // popularity model): the user is scored by item popularity.
  bool cold_start = true;
  // Factor models: the user's factor vector and (explicit models) bias, as FoldIn gives them.
  Eigen::VectorXf factors;
  float bias = 0.0f;
  // Item-item models (e.g. EASE): the history itself, items sorted ascending with their values.
  std::vector<int32_t> items;
  std::vector<float> values;
};

// Thread-safety: Fit and Restore need exclusion; every const method may be called concurrently
// once the model is fitted or restored.
class Model {
 public:
  virtual ~Model() = default;

  // The registry name of the algorithm ("als", "bpmf", "popular").
  virtual std::string_view name() const = 0;

  // Fits on `data`, replacing whatever the model held; the options were given when the model
  // was made (ModelRegistry::Create). Returns InvalidArgument for data whose shapes disagree or
  // that the model cannot use (naming why), Internal if training diverged.
  virtual absl::Status Fit(TrainingData data) = 0;

  // Adopts `data` (e.g. a model loaded by LoadModel) as this model's fitted state. Returns
  // InvalidArgument if it is not this algorithm's or its shapes are inconsistent.
  virtual absl::Status Restore(FactorModel data) = 0;

  // Folds a history: items[j] (dense item index) with value values[j], each entry one
  // interaction. An empty history gives cold_start = true. Returns InvalidArgument if the spans
  // differ in length, an item is outside [0, num_items()) or a value is not finite;
  // FailedPrecondition before Fit or Restore.
  virtual absl::StatusOr<UserState> Fold(std::span<const int32_t> items,
                                         std::span<const float> values) const = 0;

  // Ranking scores of every item for `user` (higher is better) into out (size num_items()). A
  // cold-start user gets item popularity.
  virtual void Score(const UserState& user, std::span<float> out) const = 0;

  // The (at most) k best items for `user`, best first, skipping `exclude` (sorted ascending), as
  // TopK over Score. Models with an index may override it.
  virtual std::vector<ScoredItem> Search(const UserState& user, int k,
                                         std::span<const int32_t> exclude = {}) const;

  // The fitted data: what is saved, and what serving (FoldIn, Recommender) reads.
  virtual const FactorModel& data() const = 0;
  // Moves the fitted data out; the model is empty afterwards.
  virtual FactorModel TakeData() && = 0;
  // Lineage is metadata only: never affects scores.
  virtual void set_lineage(ModelLineage lineage) = 0;

  const ModelLineage& lineage() const { return data().lineage; }
  int32_t num_items() const { return data().num_items(); }
  int32_t num_users() const { return data().num_users(); }
};

// A model whose data is a FactorModel, folded by engine/fold_in.h (a model with factors) or by
// popularity only (a model without): implementations override name, FitChecked and, to check
// an adopted model, CheckRestore. Holds the FoldIn of its data, rebuilt by Fit and Restore.
class FactorModelBase : public Model {
 public:
  FactorModelBase() = default;
  // FoldIn points into data_: a copy or a move would leave it pointing at the old model.
  FactorModelBase(const FactorModelBase&) = delete;
  FactorModelBase& operator=(const FactorModelBase&) = delete;

  // ValidateTrainingData, then FitChecked.
  absl::Status Fit(TrainingData data) final;
  absl::Status Restore(FactorModel data) override;
  absl::StatusOr<UserState> Fold(std::span<const int32_t> items,
                                 std::span<const float> values) const override;
  void Score(const UserState& user, std::span<float> out) const override;
  const FactorModel& data() const override { return data_; }
  FactorModel TakeData() && override;
  void set_lineage(ModelLineage lineage) override { data_.lineage = std::move(lineage); }

 protected:
  // Fits on data whose shapes ValidateTrainingData has checked.
  virtual absl::Status FitChecked(TrainingData data) = 0;
  // What Restore checks beyond the shapes FoldIn checks: e.g. the algorithm. Default: OK.
  virtual absl::Status CheckRestore(const FactorModel& data) const;
  // Makes `fitted` this model's state; `data` is what it was fitted on (its ID maps,
  // popularity and seen matrix are moved in, with the value range of by_user). Returns the
  // errors of FoldIn::Create (other than FailedPrecondition for a model without factors).
  absl::Status Adopt(FactorModel fitted, TrainingData data);

 private:
  absl::Status Install(FactorModel data);

  FactorModel data_;
  bool ready_ = false;
  std::optional<FoldIn> fold_;  // engaged for models with factors; points into data_
};

// Saves model.data() as a new version of models_dir (engine/model_io.h's SaveModel; errors as
// there).
absl::StatusOr<SavedModel> SaveModel(const Model& model, const std::string& models_dir,
                                     const SaveModelOptions& options = {});

}  // namespace recloop

#endif  // RECLOOP_ENGINE_MODEL_H_
