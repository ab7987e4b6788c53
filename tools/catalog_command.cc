// `recloop catalog`: item titles and categories loaded into a models directory's catalogue
// (MODELS/catalog.db, the one `recloop serve --models MODELS` reads at start), keeping each
// item's availability.
#include <cstdio>
#include <memory>
#include <string>

#include "data/item_reader.h"
#include "serving/catalog_store.h"
#include "serving/live_model.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct CatalogCommand {
  std::string models;
  std::string catalog;          // or this catalogue file (serve --catalog)
  std::string movielens_items;  // MovieLens 100K u.item
};

int RunCatalog(const CatalogCommand& cmd) {
  auto records = ReadMovieLensItems(cmd.movielens_items);
  if (!records.ok()) return Fail(records.status());
  const std::string path = cmd.catalog.empty() ? DefaultCatalogPath(cmd.models) : cmd.catalog;
  auto store = CatalogStore::Open(path);
  if (!store.ok()) return Fail(store.status());
  auto existing = (*store)->LoadAll();
  if (!existing.ok()) return Fail(existing.status());
  CatalogMap entries;
  for (ItemRecord& r : *records) {
    CatalogEntry& e = entries[r.item];
    const auto old = existing->find(r.item);
    e.available = old == existing->end() || old->second.available;
    e.title = std::move(r.title);
    e.categories = std::move(r.categories);
  }
  if (absl::Status s = (*store)->PutAll(entries); !s.ok()) return Fail(s);
  std::fprintf(stderr,
               "catalogue %s: %zu items with titles and categories from %s "
               "(a running server reads it when it starts)\n",
               path.c_str(), entries.size(), cmd.movielens_items.c_str());
  return 0;
}

}  // namespace

Subcommand AddCatalogCommand(CLI::App* app) {
  auto cmd = std::make_shared<CatalogCommand>();
  CLI::App* sub = app->add_subcommand(
      "catalog", "Load item titles and categories into a models directory's catalogue");
  auto* models =
      sub->add_option("--models", cmd->models, "Models directory: its catalogue MODELS/catalog.db");
  sub->add_option("--catalog", cmd->catalog, "Or this catalogue file (serve --catalog)")
      ->excludes(models);
  sub->add_option("--movielens-items", cmd->movielens_items,
                  "MovieLens 100K u.item: titles, and genres as categories")
      ->required();
  return {sub, [cmd] {
            if (cmd->models.empty() && cmd->catalog.empty()) {
              std::fprintf(stderr, "recloop catalog: give --models DIR or --catalog FILE\n");
              return 2;
            }
            return RunCatalog(*cmd);
          }};
}

}  // namespace recloop
