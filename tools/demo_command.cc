// `recloop demo`: generates a store, trains on it, prints metrics and a few recommendations,
// and optionally saves and serves the model.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/generator.h"
#include "data/split.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"
#include "engine/top_k.h"
#include "serving/api_keys.h"
#include "serving/catalog_store.h"
#include "serving/live_model.h"
#include "tools/serve_command.h"
#include "tools/subcommands.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

struct DemoCommand {
  GeneratorOptions generator;
  bool quiet = false;
  // Saves the model there, with a catalogue whose categories are the planted clusters
  // ("cluster-3"), and prints curl lines to try against it.
  std::string models;
  bool serve = false;  // then serves it (needs models)
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  // --serve: the API key's file (created with a new key when missing); else RECLOOP_API_KEY.
  // A --host other than loopback needs one.
  std::string api_key_file;
};

// Recommendations for a few customers, with the planted cluster of each item: a working model
// recommends mostly from the customer's own cluster.
void PrintSampleRecommendations(const FactorModel& model, const GeneratedStore& store) {
  const IdMap& gen_items = store.data.items;
  const IdMap& gen_users = store.data.users;
  std::vector<float> scores(model.num_items());
  std::printf("\ntop 5 recommendations (item [its cluster]) for a few customers:\n");
  for (int32_t u = 0; u < std::min(model.num_users(), 3); ++u) {
    const std::string& name = model.users.External(u);
    const int32_t cluster = store.user_cluster[*gen_users.Find(name)];
    model.ScoreItems(u, scores);
    const auto top = TopK(scores, 5, model.seen.RowIndices(u));
    std::printf("  customer %-7s (cluster %2d):", name.c_str(), cluster);
    for (const auto& s : top) {
      const std::string& item = model.items.External(s.item);
      std::printf(" %s[%d]", item.c_str(), store.item_cluster[*gen_items.Find(item)]);
    }
    std::printf("\n");
  }
}

// The model just evaluated, and each item's planted cluster as its category, for the server.
absl::StatusOr<SavedModel> SaveWithCatalog(const FactorModel& model, const GeneratedStore& store,
                                           const std::string& models) {
  ASSIGN_OR_RETURN(SavedModel saved, SaveModel(model, models));
  CatalogMap catalog;
  for (int32_t i = 0; i < model.num_items(); ++i) {
    const std::string& item = model.items.External(i);
    const int32_t generated = *store.data.items.Find(item);
    const int32_t cluster = store.item_cluster[generated];
    CatalogEntry& entry = catalog[item];
    entry.categories = {absl::StrCat("cluster-", cluster), GeneratedDepartment(cluster)};
    entry.title = GeneratedItemTitle(generated, cluster);
  }
  ASSIGN_OR_RETURN(auto catalog_store, CatalogStore::Open(DefaultCatalogPath(models)));
  RETURN_IF_ERROR(catalog_store->PutAll(catalog));
  return saved;
}

// Where the saved model is, and requests to try against it.
void PrintTryLines(const DemoCommand& cmd, const FactorModel& model, const GeneratedStore& store,
                   const SavedModel& saved) {
  const std::string& user = model.users.External(0);
  const int32_t cluster = store.user_cluster[*store.data.users.Find(user)];
  const std::string& item = model.items.External(0);
  const std::string base = absl::StrCat("http://", cmd.host, ":", cmd.port);
  std::printf(
      "\nmodel saved in %s (catalogue: each item's categories are its cluster and "
      "that cluster's department, with a generated title)\n",
      saved.path.c_str());
  if (cmd.serve) {
    std::printf("serving it on %s\n  open %s/ in a browser: the demo storefront page\nor try:\n",
                base.c_str(), base.c_str());
  } else {
    std::printf("serve it with `recloop serve --models %s`, then try:\n", cmd.models.c_str());
  }
  std::printf("  curl -s '%s/v1/users/%s/recommendations?n=5'\n", base.c_str(), user.c_str());
  std::printf("  curl -s '%s/v1/users/%s/recommendations?n=5&category=cluster-%d'\n", base.c_str(),
              user.c_str(), cluster);
  std::printf("  curl -s '%s/v1/users/new-customer/recommendations?n=5'   # popular items\n",
              base.c_str());
  std::printf("  curl -s '%s/v1/items/%s/similar?n=5'\n", base.c_str(), item.c_str());
  std::printf("  curl -s '%s/v1/popular?n=5'\n", base.c_str());
  std::printf("  curl -s -X DELETE '%s/v1/items/%s'   # never recommended again\n", base.c_str(),
              item.c_str());
  std::printf(
      "  curl -s -X POST -H 'Content-Type: application/json' -d "
      "'[{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"purchase\"}]' "
      "'%s/v1/feedback'   # then ask again\n",
      user.c_str(), model.items.External(std::min(1, model.num_items() - 1)).c_str(), base.c_str());
  std::printf("  curl -s '%s/v1/users/%s/feedback'\n", base.c_str(), user.c_str());
  std::printf("  curl -s '%s/v1/model'\n", base.c_str());
  std::printf("  curl -s '%s/metrics'\n", base.c_str());
  std::fflush(stdout);
}

int RunDemo(const DemoCommand& cmd) {
  // Before training, what `recloop serve` would refuse after it (serving/serve.cc).
  const char* env_key = std::getenv("RECLOOP_API_KEY");
  if (cmd.serve && !IsLoopbackHost(cmd.host) && cmd.api_key_file.empty() &&
      (env_key == nullptr || *env_key == 0)) {
    return Fail(absl::FailedPreconditionError(
        "demo --serve --host " + cmd.host +
        " needs an API key: add --api-key-file FILE (created with a new key when missing) or "
        "set RECLOOP_API_KEY, or serve 127.0.0.1"));
  }
  std::printf(
      "recloop demo: a synthetic store of %d customers, %d items and %lld interactions "
      "with %d planted taste clusters\n\n",
      cmd.generator.users, cmd.generator.items, static_cast<long long>(cmd.generator.interactions),
      cmd.generator.clusters);
  std::fflush(stdout);  // before the progress lines on stderr
  auto store = GenerateStore(cmd.generator);
  if (!store.ok()) return Fail(store.status());
  SplitSpec spec;
  spec.kind = SplitSpec::Kind::kUser;
  spec.fraction = 0.2;
  auto split = Split(store->data, spec, cmd.generator.seed);
  if (!split.ok()) return Fail(split.status());
  ModelSettings settings;  // ALS with its defaults
  settings.feedback = cmd.generator.feedback;
  CliLogger log(cmd.quiet);
  auto trained = TrainAndEvaluate(split->train, split->test, settings, EvalOptions{}.k, &log);
  if (!trained.ok()) return Fail(trained.status());
  std::printf("held-out metrics (20%% of each customer's interactions):\n");
  PrintTable("als", *trained->eval, *trained->baseline);
  const FactorModel& model = trained->model;
  PrintSampleRecommendations(model, *store);
  if (cmd.models.empty()) return 0;
  auto saved = SaveWithCatalog(model, *store, cmd.models);
  if (!saved.ok()) return Fail(saved.status());
  PrintTryLines(cmd, model, *store, *saved);
  if (!cmd.serve) return 0;
  ServeCommand serve;
  serve.serve.model.models_dir = cmd.models;
  serve.serve.events_path = cmd.models + "/events.db";
  serve.serve.http.host = cmd.host;
  serve.serve.http.port = cmd.port;
  serve.api_key_file = cmd.api_key_file;
  serve.create_api_key_file = !cmd.api_key_file.empty();
  return RunServeCommand(std::move(serve));
}

}  // namespace

Subcommand AddDemoCommand(CLI::App* app) {
  auto cmd = std::make_shared<DemoCommand>();
  cmd->generator.users = 5000;
  cmd->generator.items = 1000;
  cmd->generator.interactions = 150000;
  cmd->generator.feedback = FeedbackKind::kImplicit;
  CLI::App* sub = app->add_subcommand(
      "demo", "Generate a store, train on it, print metrics and a few recommendations");
  AddGeneratorFlags(sub, &cmd->generator);
  sub->add_flag("--quiet", cmd->quiet, "No progress lines on stderr");
  sub->add_option("--models", cmd->models,
                  "Save the model (and a catalogue of the planted clusters) in this models "
                  "directory and print curl lines to try");
  sub->add_flag("--serve", cmd->serve, "Then serve it (needs --models)")->needs("--models");
  sub->add_option("--host", cmd->host, "--serve: address to listen on")->capture_default_str();
  sub->add_option("--port", cmd->port, "--serve: TCP port")->capture_default_str();
  sub->add_option("--api-key-file", cmd->api_key_file,
                  "--serve: the API key's file, created with a new key if missing (else "
                  "$RECLOOP_API_KEY); needed for a --host other than loopback");
  return {sub, [cmd] { return RunDemo(*cmd); }};
}

}  // namespace recloop
