// `recloop eval`: a saved model evaluated on a held-out file.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "engine/model_io.h"
#include "nlohmann/json.hpp"
#include "tools/subcommands.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

struct EvalCommand {
  std::string model;  // a models directory (its `current`) or one version directory
  std::string test;
  InputFlags input;
  int k = 10;
  bool json = false;
};

int RunEval(const EvalCommand& cmd) {
  if (cmd.k < 1) return Fail(absl::InvalidArgumentError("--k must be >= 1"));
  auto model = LoadModel(cmd.model);
  if (!model.ok()) return Fail(model.status());
  auto read_options = MakeReadOptions(cmd.input, model->params.feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  CliLogger log(/*quiet=*/cmd.json);
  auto test = ReadDataFile(cmd.test, *read_options, &log);
  if (!test.ok()) return Fail(test.status());
  EvalOptions eval_options;
  eval_options.k = cmd.k;
  auto result = Evaluate(*model, *test, eval_options);
  if (!result.ok()) return Fail(result.status());
  if (cmd.json) {
    std::cout << result->ToJson().dump() << std::endl;
    return 0;
  }
  const nlohmann::json j = result->ToJson();
  for (const auto& [key, value] : j.items())
    std::printf("%-20s %s\n", key.c_str(), value.dump().c_str());
  return 0;
}

}  // namespace

Subcommand AddEvalCommand(CLI::App* app) {
  auto cmd = std::make_shared<EvalCommand>();
  CLI::App* sub = app->add_subcommand("eval", "Evaluate a saved model on a held-out file");
  sub->add_option("--model", cmd->model,
                  "Models directory (uses its current version) or one version directory")
      ->required();
  sub->add_option("--test", cmd->test, "Held-out test file")->required();
  AddInputFlags(sub, &cmd->input);
  sub->add_option("--k", cmd->k, "Cut-off of the ranking metrics")->capture_default_str();
  sub->add_flag("--json", cmd->json, "Print the metrics as one JSON object");
  return {sub, [cmd] { return RunEval(*cmd); }};
}

}  // namespace recloop
