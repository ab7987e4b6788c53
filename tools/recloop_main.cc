// recloop: train, evaluate, inspect models and generate data from the command line. A thin
// dispatcher: each subcommand registers its flags in its own file (tools/subcommands.h), and the
// one that was given runs.
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "tbb/global_control.h"
#include "tools/subcommands.h"

int main(int argc, char** argv) {
  CLI::App app{"recloop: a personalised recommendation engine (training, evaluation, data)"};
  app.require_subcommand(1);
  // RECLOOP_VERSION: the top CMakeLists.txt's project(VERSION); RECLOOP_GIT_COMMIT: HEAD when
  // the build was configured, empty outside a git checkout (tools/CMakeLists.txt).
  const std::string commit = RECLOOP_GIT_COMMIT;
  app.set_version_flag("--version", std::string("recloop ") + RECLOOP_VERSION +
                                        (commit.empty() ? "" : " (git " + commit + ")"));
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  // CLI11 reads config files at the top level: `--config` belongs to the root app and falls
  // through from `serve` and `train`; the file's keys sit under a [serve] or [train] table.
  // Command-line flags win.
  app.set_config("--config", "",
                 "serve, train: TOML config file, keys as the long flags without dashes under "
                 "[serve] or [train] (e.g. [serve] port = 9000; `recloop tune` writes a [train] "
                 "file); flags on the command line win");
  const std::vector<recloop::Subcommand> commands = {
      recloop::AddGenerateCommand(&app),    recloop::AddTrainCommand(&app),
      recloop::AddTuneCommand(&app),        recloop::AddEvalCommand(&app),
      recloop::AddEventsCommand(&app),      recloop::AddCatalogCommand(&app),
      recloop::AddModelCommand(&app),       recloop::AddDemoCommand(&app),
      recloop::AddRecommendCommand(&app),   recloop::AddSimilarCommand(&app),
      recloop::AddServeCommand(&app),       recloop::AddKeysCommand(&app),
      recloop::AddExperimentsCommand(&app), recloop::AddReplayCommand(&app),
      recloop::AddCompletionCommand(&app)};

  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<tbb::global_control> limit;
  if (threads > 0) {
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<size_t>(threads));
  }
  for (const recloop::Subcommand& command : commands) {
    if (*command.app) return command.run();
  }
  return 2;
}
