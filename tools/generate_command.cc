// `recloop generate`: a synthetic store written as CSV.
#include <cstdio>
#include <memory>
#include <string>

#include "base/timer.h"
#include "data/generator.h"
#include "data/reader.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct GenerateCommand {
  GeneratorOptions generator;
  std::string feedback = "explicit";
  std::string out;
};

int RunGenerate(const GenerateCommand& cmd) {
  GeneratorOptions o = cmd.generator;
  auto feedback = ParseFeedbackKind(cmd.feedback);
  if (!feedback.ok()) return Fail(feedback.status());
  o.feedback = *feedback;
  const Timer timer;
  auto store = GenerateStore(o);
  if (!store.ok()) return Fail(store.status());
  if (absl::Status s = WriteInteractionsCsv(store->data, cmd.out); !s.ok()) return Fail(s);
  std::fprintf(stderr, "wrote %s: %lld interactions, %d users, %d items (%.2f s)\n",
               cmd.out.c_str(), static_cast<long long>(store->data.size()),
               store->data.users.size(), store->data.items.size(), timer.Seconds());
  return 0;
}

}  // namespace

Subcommand AddGenerateCommand(CLI::App* app) {
  auto cmd = std::make_shared<GenerateCommand>();
  CLI::App* sub = app->add_subcommand(
      "generate", "Write a synthetic store (power-law popularity, planted taste clusters) as CSV");
  AddGeneratorFlags(sub, &cmd->generator);
  sub->add_option("--feedback", cmd->feedback, "explicit (ratings 1-5) or implicit (counts)")
      ->capture_default_str();
  sub->add_option("--out", cmd->out, "Output CSV file")->required();
  return {sub, [cmd] { return RunGenerate(*cmd); }};
}

}  // namespace recloop
