// `recloop events export`: an event store written as CSV.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "data/event_store.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct EventsExportCommand {
  std::string store;  // the event store (`recloop serve --events PATH`)
  std::string out;    // CSV: user,item,type,value,timestamp
  std::string impressions;  // JSON Lines: the lists served and the events credited to them
};

int RunEventsExport(const EventsExportCommand& cmd) {
  auto store = EventStore::OpenExisting(cmd.store);
  if (!store.ok()) return Fail(store.status());
  auto rows = (*store)->ExportCsv(cmd.out);
  if (!rows.ok()) return Fail(rows.status());
  std::fprintf(stderr, "wrote %s: %lld events\n", cmd.out.c_str(), static_cast<long long>(*rows));
  if (!cmd.impressions.empty()) {
    auto lines = (*store)->ExportImpressions(cmd.impressions);
    if (!lines.ok()) return Fail(lines.status());
    std::fprintf(stderr, "wrote %s: %lld impressions and attributions\n", cmd.impressions.c_str(),
                 static_cast<long long>(*lines));
  }
  return 0;
}

}  // namespace

Subcommand AddEventsCommand(CLI::App* app) {
  auto cmd = std::make_shared<EventsExportCommand>();
  CLI::App* events = app->add_subcommand("events", "Work with an event store");
  events->require_subcommand(1);
  CLI::App* sub = events->add_subcommand(
      "export", "Write every event as CSV (user,item,type,value,timestamp), the file train reads");
  sub->add_option("--store", cmd->store, "The event store")->required();
  sub->add_option("--out", cmd->out, "Output CSV file")->required();
  sub->add_option("--impressions", cmd->impressions,
                  "Also write the impressions (lists served, with their recommendation_id) and "
                  "the events credited to them, as JSON Lines");
  return {sub, [cmd] { return RunEventsExport(*cmd); }};
}

}  // namespace recloop
