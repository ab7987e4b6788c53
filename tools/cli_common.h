// What the subcommands of `recloop` share: the input-file flags, the failure exit, the metrics
// table, and the logger that carries the libraries' progress lines to stderr.
#ifndef RECLOOP_TOOLS_CLI_COMMON_H_
#define RECLOOP_TOOLS_CLI_COMMON_H_

#include <functional>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/logger.h"
#include "data/generator.h"
#include "data/reader.h"
#include "training/evaluate.h"

namespace recloop {

// A subcommand as the dispatcher sees it: the (possibly nested) CLI11 app that selects it, and
// what to run once the command line is parsed. `run` returns the process exit code.
struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

struct InputFlags {
  std::string format = "auto";  // auto|ml100k|dat|csv|tsv
  bool skip_bad_rows = false;
  std::string duplicates;  // last|sum|error; empty: last (explicit) or sum (implicit)
};

// --format, --skip-bad-rows and --duplicates.
void AddInputFlags(CLI::App* app, InputFlags* f);

// The synthetic store's flags (generate, demo).
void AddGeneratorFlags(CLI::App* app, GeneratorOptions* g);

// The reader settings of the input flags; an empty `duplicates` takes the feedback kind's
// default. Returns InvalidArgument for an unknown format or policy.
absl::StatusOr<ReadOptions> MakeReadOptions(const InputFlags& f, FeedbackKind feedback);

// The feedback kind a --feedback flag names: "explicit" or "implicit" as given, or with "auto"
// guessed from the values of the file `data` (data/feedback_guess.h), saying what was chosen
// and why on `log` (kInfo). Without a data file (an event store) "auto" is explicit. Errors:
// InvalidArgument for another name; the reader's for `data`.
absl::StatusOr<FeedbackKind> ResolveFeedbackKind(const std::string& flag, const std::string& data,
                                         const InputFlags& input, Logger* log);

// Prints "recloop: MESSAGE" on stderr; returns 1, the exit code of a failed command.
int Fail(const absl::Status& s);

// Prints the held-out metrics of a model beside the popularity baseline's, as a table on stdout.
void PrintTable(const std::string& name, const EvalResult& model, const EvalResult& baseline);

// The algorithm a command trains when none is named: als, the ranking model, for every kind of
// feedback (with ratings, `train` fits it on the ratings as preferences: ModelSettings::
// rank_ratings). bpmf and explicit als remain the rating predictors, by name.
inline std::string AlgorithmOrDefault(const std::string& given, FeedbackKind) {
  return given.empty() ? "als" : given;
}

// The libraries' log lines on stderr as they are, without prefix or level tag. With `quiet`,
// progress (kInfo) is dropped and only warnings and errors are written. Thread-safe.
class CliLogger : public Logger {
 public:
  explicit CliLogger(bool quiet) : quiet_(quiet) {}
  void Log(LogLevel level, std::string_view line) override;

 private:
  const bool quiet_;
};

}  // namespace recloop

#endif  // RECLOOP_TOOLS_CLI_COMMON_H_
