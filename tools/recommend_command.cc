// `recloop recommend` (top-n items for one user, or every user into a CSV file) and
// `recloop similar` (the items nearest an item), from a saved model and its item index.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/timer.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "engine/recommender.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tbb/parallel_for.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

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

// A model with its item index (engine's LoadOrBuildItemIndex).
absl::StatusOr<Recommender> LoadRecommender(const std::string& path) {
  ASSIGN_OR_RETURN(std::string dir, ResolveModelDir(path));
  ASSIGN_OR_RETURN(FactorModel loaded, LoadModel(dir));
  auto model = std::make_shared<const FactorModel>(std::move(loaded));
  ASSIGN_OR_RETURN(auto index, LoadOrBuildItemIndex(*model, dir));
  return Recommender::Create(model, std::move(index));
}

nlohmann::json ItemsJson(const FactorModel& model, const std::vector<Recommendation>& recs) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& r : recs) {
    items.push_back({{"item", model.items.External(r.item)},
                     {"score", r.score},
                     {"source", std::string(ToString(r.source))}});
  }
  return items;
}

// Prints a result list: as one JSON object {key: id, model_version, items} (the server's shape),
// or as a table.
void PrintResult(const char* key, const std::string& id, const FactorModel& model,
                 const std::vector<Recommendation>& recs, bool json) {
  if (json) {
    nlohmann::json out = {
        {key, id}, {"model_version", model.lineage.version}, {"items", ItemsJson(model, recs)}};
    std::cout << out.dump() << std::endl;
    return;
  }
  for (size_t rank = 0; rank < recs.size(); ++rank) {
    std::printf("%3zu  %-20s %10.4f  %s\n", rank + 1, model.items.External(recs[rank].item).c_str(),
                recs[rank].score, std::string(ToString(recs[rank].source)).c_str());
  }
}

// Every user's recommendations as CSV rows, one string per user, computed in parallel with a
// progress line on stderr for large models.
absl::StatusOr<std::vector<std::string>> AllUsersRows(const Recommender& rec,
                                                      const RecommendOptions& options) {
  const FactorModel& model = rec.model();
  const int32_t users = model.num_users();
  std::vector<std::string> rows(users);
  std::atomic<int32_t> done{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mu;
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, users, 64), [&](const auto& range) {
    for (int32_t u = range.begin(); u != range.end(); ++u) {
      auto recs = rec.Recommend(u, options);
      if (!recs.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        failed = true;
        error = std::string(recs.status().message());
        return;
      }
      std::string& row = rows[u];
      for (size_t r = 0; r < recs->size(); ++r) {
        const auto& x = (*recs)[r];
        row += model.users.External(u) + "," + std::to_string(r + 1) + "," +
               model.items.External(x.item) + "," + std::to_string(x.score) + "\n";
      }
    }
    const int32_t d = done.fetch_add(range.size()) + range.size();
    if (users >= 10000 && d * 20 / users != (d - range.size()) * 20 / users) {
      std::fprintf(stderr, "\rrecommend: %3d%% (%d/%d users)", d * 100 / users, d, users);
    }
  });
  if (users >= 10000) std::fprintf(stderr, "\n");
  if (failed) return absl::InternalError(error);
  return rows;
}

int RunRecommend(const RecommendCommand& cmd) {
  if (cmd.n < 1) return Fail(absl::InvalidArgumentError("--n must be >= 1"));
  if (cmd.all == !cmd.user.empty()) {
    return Fail(absl::InvalidArgumentError("give exactly one of --user U and --all"));
  }
  if (cmd.all && cmd.out.empty()) return Fail(absl::InvalidArgumentError("--all needs --out FILE"));
  auto rec = LoadRecommender(cmd.model);
  if (!rec.ok()) return Fail(rec.status());
  const FactorModel& model = rec->model();
  RecommendOptions options;
  options.n = cmd.n;
  if (!cmd.all) {
    // An unknown user is not an error: it gets popular items (source "popular"), as the server
    // will answer a new customer.
    const int32_t u = model.users.Find(cmd.user).value_or(-1);
    auto recs = rec->Recommend(u, options);
    if (!recs.ok()) return Fail(recs.status());
    PrintResult("user", cmd.user, model, *recs, cmd.json);
    return 0;
  }
  // Every user, in parallel; rows are written in user order.
  const Timer timer;
  auto rows = AllUsersRows(*rec, options);
  if (!rows.ok()) return Fail(rows.status());
  std::ofstream out(cmd.out, std::ios::binary | std::ios::trunc);
  out << "user,rank,item,score\n";
  for (const auto& row : *rows) out << row;
  if (!out.flush()) return Fail(absl::InternalError(cmd.out + ": write failed"));
  const double seconds = timer.Seconds();
  const int32_t users = model.num_users();
  std::fprintf(stderr, "wrote %s: %d users x %d items in %.2f s (%.0f users/s)\n", cmd.out.c_str(),
               users, cmd.n, seconds, users / std::max(seconds, 1e-9));
  return 0;
}

int RunSimilar(const SimilarCommand& cmd) {
  if (cmd.n < 1) return Fail(absl::InvalidArgumentError("--n must be >= 1"));
  auto rec = LoadRecommender(cmd.model);
  if (!rec.ok()) return Fail(rec.status());
  const FactorModel& model = rec->model();
  const auto item = model.items.Find(cmd.item);
  if (!item) return Fail(absl::NotFoundError("unknown item '" + cmd.item + "'"));
  RecommendOptions options;
  options.n = cmd.n;
  auto recs = rec->Similar(*item, options);
  if (!recs.ok()) return Fail(recs.status());
  PrintResult("item", cmd.item, model, *recs, cmd.json);
  return 0;
}

}  // namespace

Subcommand AddRecommendCommand(CLI::App* app) {
  auto cmd = std::make_shared<RecommendCommand>();
  CLI::App* sub = app->add_subcommand(
      "recommend", "Top-n recommendations for one user, or for every user into a CSV file");
  sub->add_option("--model", cmd->model,
                  "Models directory (its current version) or one version directory")
      ->required();
  sub->add_option("--user", cmd->user, "External user ID (unknown: popular items)");
  sub->add_flag("--all", cmd->all, "Every user of the model (with --out)");
  sub->add_option("--n", cmd->n, "Items per user")->capture_default_str();
  sub->add_flag("--json", cmd->json, "One JSON object, as the server returns it");
  sub->add_option("--out", cmd->out, "--all: CSV file user,rank,item,score");
  return {sub, [cmd] { return RunRecommend(*cmd); }};
}

Subcommand AddSimilarCommand(CLI::App* app) {
  auto cmd = std::make_shared<SimilarCommand>();
  CLI::App* sub =
      app->add_subcommand("similar", "Items most similar to an item (cosine of item embeddings)");
  sub->add_option("--model", cmd->model,
                  "Models directory (its current version) or one version directory")
      ->required();
  sub->add_option("--item", cmd->item, "External item ID")->required();
  sub->add_option("--n", cmd->n, "Number of items")->capture_default_str();
  sub->add_flag("--json", cmd->json, "One JSON object");
  return {sub, [cmd] { return RunSimilar(*cmd); }};
}

}  // namespace recloop
