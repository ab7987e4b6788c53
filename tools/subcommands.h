// The subcommands of the `recloop` tool, one file each (tools/*_command.cc). Each Add function
// registers its subcommand's flags on `app` (the root) and returns what runs it; the runner
// prints results on stdout, progress and errors on stderr, and returns the exit code.
#ifndef RECLOOP_TOOLS_SUBCOMMANDS_H_
#define RECLOOP_TOOLS_SUBCOMMANDS_H_

#include "CLI/CLI.hpp"
#include "tools/cli_common.h"

namespace recloop {

Subcommand AddGenerateCommand(CLI::App* app);   // generate_command.cc
Subcommand AddTrainCommand(CLI::App* app);      // train_command.cc
Subcommand AddTuneCommand(CLI::App* app);       // tune_command.cc
Subcommand AddEvalCommand(CLI::App* app);       // eval_command.cc
Subcommand AddEventsCommand(CLI::App* app);     // events_command.cc: `events export`
Subcommand AddCatalogCommand(CLI::App* app);    // catalog_command.cc
Subcommand AddModelCommand(CLI::App* app);      // model_info_command.cc: `model info`
Subcommand AddDemoCommand(CLI::App* app);       // demo_command.cc
Subcommand AddRecommendCommand(CLI::App* app);  // recommend_command.cc
Subcommand AddSimilarCommand(CLI::App* app);    // recommend_command.cc
Subcommand AddServeCommand(CLI::App* app);      // serve_command.cc
Subcommand AddKeysCommand(CLI::App* app);       // keys_command.cc: `keys hash`
Subcommand AddExperimentsCommand(CLI::App* app);  // experiments_command.cc: `experiments report`
Subcommand AddReplayCommand(CLI::App* app);       // replay_command.cc
// completion_command.cc: `completion bash`, a script generated when it runs from `app`'s whole
// tree (every subcommand registered by then).
Subcommand AddCompletionCommand(CLI::App* app);

}  // namespace recloop

#endif  // RECLOOP_TOOLS_SUBCOMMANDS_H_
