#include "tools/cli_common.h"

#include <cstdio>
#include <iostream>

#include "data/feedback_guess.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {

void AddInputFlags(CLI::App* app, InputFlags* f) {
  app->add_option("--format", f->format, "Input format: auto, ml100k, dat, csv, tsv")
      ->capture_default_str();
  app->add_flag("--skip-bad-rows", f->skip_bad_rows,
                "Skip malformed rows (and report how many) instead of stopping at the first");
  app->add_option("--duplicates", f->duplicates,
                  "Repeated (user, item) pairs: last, sum or error (default: last for explicit "
                  "feedback, sum for implicit)");
}

void AddGeneratorFlags(CLI::App* app, GeneratorOptions* g) {
  app->add_option("--users", g->users, "Number of users")->capture_default_str();
  app->add_option("--items", g->items, "Number of items")->capture_default_str();
  app->add_option("--interactions", g->interactions, "Number of interactions")
      ->capture_default_str();
  app->add_option("--clusters", g->clusters, "Planted taste clusters")->capture_default_str();
  app->add_option("--rank", g->rank, "Rank of the planted taste structure")->capture_default_str();
  app->add_option("--zipf", g->zipf_exponent, "Exponent of the power-law item popularity")
      ->capture_default_str();
  app->add_option("--in-cluster", g->in_cluster,
                  "Probability that an interaction comes from the user's cluster")
      ->capture_default_str();
  app->add_option("--seed", g->seed, "Random seed")->capture_default_str();
}

absl::StatusOr<ReadOptions> MakeReadOptions(const InputFlags& f, FeedbackKind feedback) {
  ReadOptions o;
  ASSIGN_OR_RETURN(o.format, ParseFileFormat(f.format));
  o.skip_bad_rows = f.skip_bad_rows;
  if (f.duplicates.empty()) {
    // A re-rating replaces the old rating; repeated events add up to a stronger signal.
    o.duplicates = feedback == FeedbackKind::kExplicit ? DuplicatePolicy::kLast : DuplicatePolicy::kSum;
  } else {
    ASSIGN_OR_RETURN(o.duplicates, ParseDuplicatePolicy(f.duplicates));
  }
  return o;
}

absl::StatusOr<FeedbackKind> ResolveFeedbackKind(const std::string& flag, const std::string& data,
                                         const InputFlags& input, Logger* log) {
  if (flag != "auto") return ParseFeedbackKind(flag);
  if (data.empty()) return FeedbackKind::kExplicit;
  ASSIGN_OR_RETURN(ReadOptions read, MakeReadOptions(input, FeedbackKind::kExplicit));
  // A sample: a malformed row is reported by the real read, with its file and line.
  read.skip_bad_rows = true;
  ASSIGN_OR_RETURN(const FeedbackGuess guess, GuessFileFeedback(data, read));
  log->Info("feedback: %s (%s; --feedback explicit|implicit to choose)",
            std::string(ToString(guess.feedback)), guess.reason);
  return guess.feedback;
}

int Fail(const absl::Status& s) {
  std::cerr << "recloop: " << s.message() << "\n";
  return 1;
}

void PrintTable(const std::string& name, const EvalResult& model, const EvalResult& baseline) {
  const nlohmann::json a = model.ToJson();
  const nlohmann::json b = baseline.ToJson();
  std::printf("%-16s %12s %12s\n", "metric", name.c_str(), "popular");
  for (const auto& [key, value] : a.items()) {
    if (!value.is_number_float()) continue;
    std::printf("%-16s %12.4f", key.c_str(), value.get<double>());
    if (b.contains(key)) {
      std::printf(" %12.4f\n", b[key].get<double>());
    } else {
      std::printf(" %12s\n", "-");
    }
  }
  std::printf("%-16s %12lld\n%-16s %12lld\n%-16s %12lld\n", "users",
              static_cast<long long>(model.users), "items", static_cast<long long>(model.items),
              "test_interactions", static_cast<long long>(model.test_interactions));
}

void CliLogger::Log(LogLevel level, std::string_view line) {
  if (quiet_ && level == LogLevel::kInfo) return;
  // One write per line so that lines of concurrent threads do not interleave.
  std::string out(line);
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace recloop
