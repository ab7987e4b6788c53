#include "training/evaluate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/top_k.h"
#include "nlohmann/json.hpp"
#include "tbb/blocked_range.h"
#include "tbb/enumerable_thread_specific.h"
#include "tbb/parallel_for.h"
#include "training/ranking_metrics.h"

namespace recloop {
namespace {

// Users per oneTBB task: one user costs a full pass over the catalogue, so small chunks
// already amortise the scheduling.
constexpr size_t kUserGrain = 8;

// The model's parts that Evaluate indexes into; a model assembled by hand (or a TrainAls result
// without the fields train.h fills in) would otherwise read out of bounds.
absl::Status CheckModel(const FactorModel& model) {
  const int32_t users = model.num_users();
  const int32_t items = model.num_items();
  if (items == 0) return absl::InvalidArgumentError("model has no items");
  if (model.seen.rows() != users || model.seen.cols() != items) {
    return absl::InvalidArgumentError(absl::StrCat("model's seen matrix is ", model.seen.rows(),
                                                   " x ", model.seen.cols(), ", expected ", users,
                                                   " x ", items));
  }
  if (model.item_popularity.size() != items) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", model.item_popularity.size(),
                                                   " item popularities for ", items, " items"));
  }
  if (model.has_factors() &&
      (model.user_factors.rows() != users || model.item_factors.rows() != items ||
       model.user_factors.cols() != model.item_factors.cols())) {
    return absl::InvalidArgumentError(
        absl::StrCat("model's factor matrices are ", model.user_factors.rows(), " x ",
                     model.user_factors.cols(), " and ", model.item_factors.rows(), " x ",
                     model.item_factors.cols(), " for ", users, " users and ", items, " items"));
  }
  if (model.has_biases() && (model.user_bias.size() != users || model.item_bias.size() != items)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model has ", model.user_bias.size(), " user and ", model.item_bias.size(),
                     " item biases for ", users, " users and ", items, " items"));
  }
  return absl::OkStatus();
}

// Model index of each index of `test_ids`, -1 where the model does not know the ID.
std::vector<int32_t> MapIds(const IdMap& test_ids, const IdMap& model_ids) {
  std::vector<int32_t> out(test_ids.size());
  for (int32_t t = 0; t < test_ids.size(); ++t) {
    out[t] = model_ids.Find(test_ids.External(t)).value_or(-1);
  }
  return out;
}

struct UserMetrics {
  double precision = 0, recall = 0, ndcg = 0, map = 0, hit_rate = 0, auc = 0;
};

// Per-thread scratch: the score vector is the size of the catalogue, so it is allocated once
// per thread rather than once per user.
struct Scratch {
  std::vector<float> scores;
  std::vector<char> recommended;  // per item: appeared in some top-k list of this thread
};

}  // namespace

nlohmann::json EvalResult::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  if (rmse.has_value()) j["rmse"] = *rmse;
  if (mae.has_value()) j["mae"] = *mae;
  j[absl::StrCat("precision@", k)] = precision;
  j[absl::StrCat("recall@", k)] = recall;
  j[absl::StrCat("ndcg@", k)] = ndcg;
  j[absl::StrCat("map@", k)] = map;
  j[absl::StrCat("hit_rate@", k)] = hit_rate;
  j["auc"] = auc;
  j[absl::StrCat("coverage@", k)] = coverage;
  j["users"] = users;
  j["items"] = items;
  j["test_interactions"] = test_interactions;
  j["unknown_user_rows"] = unknown_user_rows;
  j["unknown_item_rows"] = unknown_item_rows;
  return j;
}

absl::StatusOr<EvalSums> EvaluateSums(const FactorModel& model, const Interactions& test,
                                      const EvalOptions& options) {
  if (options.k < 1) {
    return absl::InvalidArgumentError(absl::StrCat("k must be >= 1, got ", options.k));
  }
  if (std::isnan(options.relevance_threshold)) {
    return absl::InvalidArgumentError("relevance_threshold must not be NaN");
  }
  if (test.empty()) return absl::InvalidArgumentError("no test interactions");
  if (auto s = CheckModel(model); !s.ok()) return s;

  EvalSums result;
  result.k = options.k;
  result.items = model.num_items();
  result.test_interactions = test.size();
  result.recommended.assign(static_cast<size_t>(model.num_items()), 0);

  // Matching by external ID once per distinct ID rather than once per row.
  const std::vector<int32_t> user_of = MapIds(test.users, model.users);
  const std::vector<int32_t> item_of = MapIds(test.items, model.items);

  // (model user, model item) of the rows that count for ranking.
  std::vector<std::pair<int32_t, int32_t>> relevant_pairs;
  double squared_error = 0.0, absolute_error = 0.0;
  const bool rating_metrics =
      model.params.feedback == FeedbackKind::kExplicit && model.params.algorithm != Algorithm::kPopular;
  for (int64_t row = 0; row < test.size(); ++row) {
    const int32_t u = user_of[test.user[row]];
    const int32_t i = item_of[test.item[row]];
    const float value = test.value[row];
    if (u < 0) ++result.unknown_user_rows;
    if (i < 0) ++result.unknown_item_rows;
    if (rating_metrics) {
      const double error = static_cast<double>(model.PredictRating(u, i)) - value;
      squared_error += error * error;
      absolute_error += std::abs(error);
    }
    if (u >= 0 && i >= 0 && value >= options.relevance_threshold) {
      relevant_pairs.emplace_back(u, i);
    }
  }
  result.rating_metrics = rating_metrics;
  result.squared_error = squared_error;
  result.absolute_error = absolute_error;

  // Group by user: after sorting, each user's relevant items are one sorted, deduplicated run.
  std::sort(relevant_pairs.begin(), relevant_pairs.end());
  relevant_pairs.erase(std::unique(relevant_pairs.begin(), relevant_pairs.end()),
                       relevant_pairs.end());
  std::vector<int32_t> relevant_items(relevant_pairs.size());
  std::vector<int32_t> ranked_users;
  std::vector<size_t> run_start;  // size ranked_users + 1: offsets into relevant_items
  for (size_t p = 0; p < relevant_pairs.size(); ++p) {
    relevant_items[p] = relevant_pairs[p].second;
    if (p == 0 || relevant_pairs[p].first != relevant_pairs[p - 1].first) {
      ranked_users.push_back(relevant_pairs[p].first);
      run_start.push_back(p);
    }
  }
  run_start.push_back(relevant_pairs.size());
  result.users = static_cast<int64_t>(ranked_users.size());
  if (ranked_users.empty()) return result;

  // Each user's values land at its own index and are summed serially below, so the result
  // does not depend on how oneTBB splits the work.
  const size_t num_items = static_cast<size_t>(model.num_items());
  std::vector<UserMetrics> per_user(ranked_users.size());
  tbb::enumerable_thread_specific<Scratch> scratch([num_items] {
    return Scratch{std::vector<float>(num_items), std::vector<char>(num_items, 0)};
  });
  tbb::parallel_for(tbb::blocked_range<size_t>(0, ranked_users.size(), kUserGrain),
                    [&](const tbb::blocked_range<size_t>& range) {
                      Scratch& local = scratch.local();
                      std::vector<int32_t> ranked;
                      ranked.reserve(options.k);
                      for (size_t x = range.begin(); x != range.end(); ++x) {
                        const int32_t u = ranked_users[x];
                        const std::span<const int32_t> relevant(
                            relevant_items.data() + run_start[x], run_start[x + 1] - run_start[x]);
                        // The standard protocol: the user's training items are not candidates
                        // (serving filters them too), so a test item the user also trained on
                        // cannot be hit.
                        const std::span<const int32_t> seen = model.seen.RowIndices(u);
                        model.ScoreItems(u, local.scores);
                        ranked.clear();
                        for (const ScoredItem& s : TopK(local.scores, options.k, seen)) {
                          ranked.push_back(s.item);
                          local.recommended[s.item] = 1;
                        }
                        UserMetrics& m = per_user[x];
                        m.precision = PrecisionAtK(ranked, relevant, options.k);
                        m.recall = RecallAtK(ranked, relevant, options.k);
                        m.ndcg = NdcgAtK(ranked, relevant, options.k);
                        m.map = AveragePrecisionAtK(ranked, relevant, options.k);
                        m.hit_rate = HitRateAtK(ranked, relevant, options.k);
                        m.auc = Auc(local.scores, relevant, seen);
                      }
                    });

  for (const UserMetrics& m : per_user) {
    result.precision += m.precision;
    result.recall += m.recall;
    result.ndcg += m.ndcg;
    result.map += m.map;
    result.hit_rate += m.hit_rate;
    result.auc += m.auc;
  }
  // A set union (OR) does not depend on which thread recommended what.
  for (const Scratch& local : scratch) {
    for (size_t i = 0; i < num_items; ++i) result.recommended[i] |= local.recommended[i];
  }
  return result;
}

EvalResult FinishEvaluation(const EvalSums& sums) {
  EvalResult result;
  result.k = sums.k;
  result.items = sums.items;
  result.test_interactions = sums.test_interactions;
  result.unknown_user_rows = sums.unknown_user_rows;
  result.unknown_item_rows = sums.unknown_item_rows;
  result.users = sums.users;
  if (sums.rating_metrics && sums.test_interactions > 0) {
    const double n = static_cast<double>(sums.test_interactions);
    result.rmse = std::sqrt(sums.squared_error / n);
    result.mae = sums.absolute_error / n;
  }
  if (sums.users == 0) return result;
  const double num_users = static_cast<double>(sums.users);
  result.precision = sums.precision / num_users;
  result.recall = sums.recall / num_users;
  result.ndcg = sums.ndcg / num_users;
  result.map = sums.map / num_users;
  result.hit_rate = sums.hit_rate / num_users;
  result.auc = sums.auc / num_users;
  const auto covered = std::count(sums.recommended.begin(), sums.recommended.end(), uint8_t{1});
  result.coverage = static_cast<double>(covered) / static_cast<double>(sums.items);
  return result;
}

absl::StatusOr<EvalResult> Evaluate(const FactorModel& model, const Interactions& test,
                                    const EvalOptions& options) {
  absl::StatusOr<EvalSums> sums = EvaluateSums(model, test, options);
  if (!sums.ok()) return sums.status();
  return FinishEvaluation(*sums);
}

}  // namespace recloop
