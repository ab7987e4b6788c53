// `recloop model info`: a saved model's metadata.
#include <iostream>
#include <memory>
#include <string>

#include "engine/model_io.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct ModelInfoCommand {
  std::string model;  // a models directory (its `current`) or one version directory
  bool json = false;  // print the metadata as JSON instead of Protobuf text format
};

int RunModelInfo(const ModelInfoCommand& cmd) {
  auto info = DescribeModel(cmd.model, cmd.json);
  if (!info.ok()) return Fail(info.status());
  std::cout << *info;
  return 0;
}

}  // namespace

Subcommand AddModelCommand(CLI::App* app) {
  auto cmd = std::make_shared<ModelInfoCommand>();
  CLI::App* model = app->add_subcommand("model", "Inspect saved models");
  model->require_subcommand(1);
  CLI::App* sub = model->add_subcommand(
      "info", "Print a model's metadata: lineage, hyper-parameters, shapes, checksums");
  sub->add_option("DIR", cmd->model,
                  "Models directory (uses its current version) or one version directory")
      ->required();
  sub->add_flag("--json", cmd->json, "Print the metadata as JSON");
  return {sub, [cmd] { return RunModelInfo(*cmd); }};
}

}  // namespace recloop
