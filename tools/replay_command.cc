// `recloop replay --store events.db --model A [--model B ...]`: the logged events replayed
// through the serving path against each model (serving/replay.h), beside eval on the same
// events, to rank candidate models before any customer sees them.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "serving/live_model.h"
#include "serving/replay.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct ReplayCommand {
  std::string store;
  std::vector<std::string> models;  // models directories (their current) or version directories
  std::string catalog;              // empty: each models directory's catalog.db
  ReplayOptions options;
  bool no_fold_in = false;
  bool no_filters = false;
  bool json = false;
};

// The snapshot the server would serve from `path`: a models directory's current version, or the
// version directory `path` (with its models directory's catalogue).
absl::StatusOr<std::shared_ptr<const ModelSnapshot>> LoadSnapshot(const std::string& path,
                                                                  const std::string& catalog) {
  namespace fs = std::filesystem;
  const bool models_dir = fs::exists(fs::path(path) / "current");
  LiveModelOptions live;
  live.models_dir = models_dir ? path : fs::path(path).lexically_normal().parent_path().string();
  live.catalog_path = catalog;
  auto opened = LiveModel::Open(live);
  if (!opened.ok()) return opened.status();
  if (!models_dir) {
    if (absl::Status s = (*opened)->Reload(path); !s.ok()) return s;
  }
  auto snap = (*opened)->Get();
  if (snap == nullptr) return absl::NotFoundError(absl::StrCat("no model in ", path));
  return snap;
}

void PrintRow(const char* name, const std::string& version, int64_t users, double hit_rate,
              double ndcg, double recall) {
  std::printf("%-24s %-10s %8lld %10.4f %10.4f %10.4f\n", name, version.c_str(),
              static_cast<long long>(users), hit_rate, ndcg, recall);
}

int RunReplay(ReplayCommand& cmd) {
  if (!std::filesystem::exists(cmd.store)) {
    return Fail(absl::NotFoundError("no event store at " + cmd.store));
  }
  auto store = EventStore::Open({cmd.store});
  if (!store.ok()) return Fail(store.status());
  cmd.options.fold_in = !cmd.no_fold_in;
  cmd.options.filters = !cmd.no_filters;
  nlohmann::json out = nlohmann::json::array();
  const int k = cmd.options.k;
  if (!cmd.json) {
    std::printf("%-24s %-10s %8s %10s %10s %10s\n", "model", "version", "users",
                absl::StrCat("hit@", k).c_str(), absl::StrCat("ndcg@", k).c_str(),
                absl::StrCat("recall@", k).c_str());
  }
  for (const std::string& path : cmd.models) {
    auto snap = LoadSnapshot(path, cmd.catalog);
    if (!snap.ok()) return Fail(snap.status());
    auto r = Replay(**snap, **store, cmd.options);
    if (!r.ok()) return Fail(r.status());
    if (cmd.json) {
      nlohmann::json j = r->ToJson();
      j["model"] = path;
      out.push_back(std::move(j));
      continue;
    }
    std::printf(
        "%s: events %lld..%lld (%lld), %lld targets, %lld lists (%lld popular), "
        "%lld folds\n",
        path.c_str(), static_cast<long long>(r->after_seq + 1),
        static_cast<long long>(r->through_seq), static_cast<long long>(r->events),
        static_cast<long long>(r->targets), static_cast<long long>(r->lists),
        static_cast<long long>(r->popular_lists), static_cast<long long>(r->folds));
    PrintRow("  replay", r->model_version, r->all.users, r->all.hit_rate, r->all.ndcg,
             r->all.recall);
    PrintRow("  replay, known users", r->model_version, r->known.users, r->known.hit_rate,
             r->known.ndcg, r->known.recall);
    PrintRow("  eval (offline)", r->model_version, r->offline.users, r->offline.hit_rate,
             r->offline.ndcg, r->offline.recall);
  }
  if (cmd.json) std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

Subcommand AddReplayCommand(CLI::App* app) {
  auto cmd = std::make_shared<ReplayCommand>();
  CLI::App* sub = app->add_subcommand(
      "replay",
      "Replay an event store's events through the serving path (ANN, filters, popular "
      "fallback, fold-in after each event) against each model: hit rate, NDCG and recall of "
      "what would have been served before each event, beside eval on the same events");
  sub->add_option("--store", cmd->store, "The event store (`recloop serve --events`)")->required();
  sub->add_option("--model", cmd->models,
                  "A models directory (its current version) or a version directory; repeat to "
                  "compare models")
      ->required();
  sub->add_option("--catalog", cmd->catalog,
                  "The item catalogue whose availability filters the lists (default: the models "
                  "directory's catalog.db)");
  sub->add_option("--k", cmd->options.k, "List length and metric cut-off")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  sub->add_option("--after-seq", cmd->options.after_seq,
                  "Replay events after this sequence number (default: after the model's last "
                  "trained event of this store)");
  sub->add_option("--through-seq", cmd->options.through_seq,
                  "Replay events up to this sequence number (default: the last)");
  sub->add_flag("--no-fold-in", cmd->no_fold_in,
                "Do not fold the customer in after each event (as eval: the model's rows only)");
  sub->add_flag("--no-filters", cmd->no_filters,
                "Do not filter out items the catalogue marks unavailable");
  sub->add_flag("--json", cmd->json, "Print one JSON array, an object per model");
  return {sub, [cmd] { return RunReplay(*cmd); }};
}

}  // namespace recloop
