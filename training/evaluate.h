// Offline evaluation of a model on a held-out set, with the standard protocol: ranking
// candidates are all items of the model except the user's training items; rating metrics for
// explicit models.
#ifndef RECLOOP_TRAINING_EVALUATE_H_
#define RECLOOP_TRAINING_EVALUATE_H_

#include <cstdint>
#include <limits>
#include <optional>

#include "absl/status/statusor.h"
#include "data/interactions.h"
#include "engine/factor_model.h"
#include "nlohmann/json_fwd.hpp"

namespace recloop {

struct EvalOptions {
  // Cut-off of the ranking metrics, >= 1.
  int k = 10;
  // Test interactions with value below this are not relevant for ranking (they still count for
  // RMSE/MAE). The default counts every test interaction as relevant.
  float relevance_threshold = -std::numeric_limits<float>::infinity();
};

struct EvalResult {
  int k = 10;
  std::optional<double> rmse;  // explicit-feedback models only
  std::optional<double> mae;
  double precision = 0, recall = 0, ndcg = 0, map = 0, hit_rate = 0, auc = 0, coverage = 0;
  int64_t users = 0;              // test users that were ranked (known to the model)
  int64_t items = 0;              // items of the model (the candidate catalogue)
  int64_t test_interactions = 0;  // test rows read
  int64_t unknown_user_rows = 0;  // test rows whose user the model does not know
  int64_t unknown_item_rows = 0;  // test rows whose item the model does not know

  // {"rmse":..,"mae":..,"precision@K":..,"recall@K":..,"ndcg@K":..,"map@K":..,"hit_rate@K":..,
  //  "auc":..,"coverage@K":..,"users":..,"items":..,"test_interactions":..,
  //  "unknown_user_rows":..,"unknown_item_rows":..}
  nlohmann::json ToJson() const;
};

// Evaluates `model` on `test` (any ID maps: rows are matched to the model by external ID).
// Rating metrics over every test row (unknown users/items fall back to the biases and mean);
// ranking metrics over test users the model knows, with relevant items those of the user's test
// rows whose items the model knows. Parallel over users (oneTBB), deterministic.
absl::StatusOr<EvalResult> Evaluate(const FactorModel& model, const Interactions& test,
                                    const EvalOptions& options);

// The sums behind an EvalResult. Evaluations of disjoint sets of test users (the processes of
// the distributed trainer, each with its own users and the whole catalogue) combine into the
// result for all of them: add the sums and counts, OR the recommended flags, then
// FinishEvaluation.
struct EvalSums {
  int k = 10;
  bool rating_metrics = false;  // explicit, non-popularity model: rmse and mae are set
  double squared_error = 0, absolute_error = 0;  // over test_interactions rows
  double precision = 0, recall = 0, ndcg = 0, map = 0, hit_rate = 0, auc = 0;  // over users
  int64_t users = 0, items = 0, test_interactions = 0, unknown_user_rows = 0,
          unknown_item_rows = 0;
  std::vector<uint8_t> recommended;  // per item of the model: in some user's top k
};

// Evaluate's sums (same arguments and errors), and the result they make.
absl::StatusOr<EvalSums> EvaluateSums(const FactorModel& model, const Interactions& test,
                                      const EvalOptions& options);
EvalResult FinishEvaluation(const EvalSums& sums);

}  // namespace recloop

#endif  // RECLOOP_TRAINING_EVALUATE_H_
