#include "tools/commands.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "data/split.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"
#include "engine/top_k.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int Fail(const absl::Status& s) {
  std::cerr << "recloop: " << s.message() << "\n";
  return 1;
}

absl::StatusOr<ReadOptions> MakeReadOptions(const InputFlags& f, Feedback feedback) {
  ReadOptions o;
  ASSIGN_OR_RETURN(o.format, ParseFileFormat(f.format));
  o.skip_bad_rows = f.skip_bad_rows;
  if (f.duplicates.empty()) {
    // A re-rating replaces the old rating; repeated events add up to a stronger signal.
    o.duplicates = feedback == Feedback::kExplicit ? DuplicatePolicy::kLast : DuplicatePolicy::kSum;
  } else {
    ASSIGN_OR_RETURN(o.duplicates, ParseDuplicatePolicy(f.duplicates));
  }
  return o;
}

absl::StatusOr<Interactions> Read(const std::string& path, const ReadOptions& options,
                                  bool quiet) {
  const auto start = Clock::now();
  ReadStats stats;
  ASSIGN_OR_RETURN(Interactions data, ReadInteractions(path, options, &stats));
  if (!quiet) {
    std::fprintf(stderr, "read %s: %lld interactions, %d users, %d items (%.2f s)\n",
                 path.c_str(), static_cast<long long>(data.size()), data.users.size(),
                 data.items.size(), SecondsSince(start));
    if (stats.duplicates_merged > 0) {
      std::fprintf(stderr, "  merged %lld duplicate (user, item) rows\n",
                   static_cast<long long>(stats.duplicates_merged));
    }
  }
  // Skipped rows are reported even with --quiet: they are data the user asked us to drop.
  if (stats.rows_skipped > 0) {
    std::fprintf(stderr, "  skipped %lld malformed rows; first: %s\n",
                 static_cast<long long>(stats.rows_skipped), stats.first_skipped.c_str());
  }
  return data;
}

void PrintProgress(const IterationStats& s, int total, Feedback feedback) {
  if (feedback == Feedback::kExplicit) {
    std::fprintf(stderr, "iteration %2d/%d  loss %.6e  train_rmse %.4f  %.2f s\n", s.iteration,
                 total, s.loss, s.train_rmse, s.seconds);
  } else {
    std::fprintf(stderr, "iteration %2d/%d  loss %.6e  %.2f s\n", s.iteration, total, s.loss,
                 s.seconds);
  }
}

// Prints metric rows side by side: the model and the popularity baseline.
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

}  // namespace

int RunGenerate(const GenerateCommand& cmd) {
  GeneratorOptions o = cmd.generator;
  auto feedback = ParseFeedback(cmd.feedback);
  if (!feedback.ok()) return Fail(feedback.status());
  o.feedback = *feedback;
  const auto start = Clock::now();
  auto store = GenerateStore(o);
  if (!store.ok()) return Fail(store.status());
  if (absl::Status s = WriteInteractionsCsv(store->data, cmd.out); !s.ok()) return Fail(s);
  std::fprintf(stderr, "wrote %s: %lld interactions, %d users, %d items (%.2f s)\n",
               cmd.out.c_str(), static_cast<long long>(store->data.size()),
               store->data.users.size(), store->data.items.size(), SecondsSince(start));
  return 0;
}

int RunTrain(const TrainCommand& cmd) {
  TrainOptions options;
  auto algorithm = ParseAlgorithm(cmd.algorithm);
  if (!algorithm.ok()) return Fail(algorithm.status());
  auto feedback = ParseFeedback(cmd.feedback);
  if (!feedback.ok()) return Fail(feedback.status());
  options.algorithm = *algorithm;
  options.als = cmd.als;
  options.als.feedback = *feedback;
  if (options.algorithm == Algorithm::kAls) {
    if (absl::Status s = ValidateAlsOptions(options.als); !s.ok()) return Fail(s);
  }
  if (cmd.k < 1) return Fail(absl::InvalidArgumentError("--k must be >= 1"));
  auto read_options = MakeReadOptions(cmd.input, *feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  std::optional<SplitSpec> spec;
  if (!cmd.split.empty()) {
    auto parsed = ParseSplitSpec(cmd.split);
    if (!parsed.ok()) return Fail(parsed.status());
    spec = *parsed;
  }

  auto data = Read(cmd.data, *read_options, cmd.quiet);
  if (!data.ok()) return Fail(data.status());
  const int64_t data_rows = data->size();
  Interactions train, test;
  if (spec) {
    auto split = Split(*data, *spec, cmd.als.seed);
    if (!split.ok()) return Fail(split.status());
    train = std::move(split->train);
    test = std::move(split->test);
    if (!cmd.quiet) {
      std::fprintf(stderr, "split %s: %lld train, %lld test\n", cmd.split.c_str(),
                   static_cast<long long>(train.size()), static_cast<long long>(test.size()));
    }
  } else {
    train = std::move(*data);
    if (!cmd.test.empty()) {
      auto t = Read(cmd.test, *read_options, cmd.quiet);
      if (!t.ok()) return Fail(t.status());
      test = std::move(*t);
    }
  }

  const auto start = Clock::now();
  IterationCallback progress;
  if (!cmd.quiet) {
    progress = [&](const IterationStats& s) {
      PrintProgress(s, options.als.iterations, options.als.feedback);
    };
  }
  auto model = TrainModel(train, options, progress);
  if (!model.ok()) return Fail(model.status());
  const double train_seconds = SecondsSince(start);
  if (!cmd.quiet) std::fprintf(stderr, "trained %s in %.2f s\n", cmd.algorithm.c_str(), train_seconds);

  // Evaluate before saving, so that the held-out metrics go into the model's metadata.
  std::optional<EvalResult> result, baseline;
  if (!test.empty()) {
    EvalOptions eval_options;
    eval_options.k = cmd.k;
    auto r = Evaluate(*model, test, eval_options);
    if (!r.ok()) return Fail(r.status());
    result = std::move(*r);
    auto b = Evaluate(TrainPopular(train, *feedback), test, eval_options);
    if (!b.ok()) return Fail(b.status());
    baseline = std::move(*b);
  }

  std::optional<SavedModel> saved;
  if (!cmd.out.empty()) {
    ModelLineage& lineage = model->lineage;
    // Hashed only when the model is kept: it costs a second read of the data file.
    auto data_print = FingerprintFile(cmd.data);
    if (!data_print.ok()) return Fail(data_print.status());
    lineage.data = *data_print;
    // Absolute, so that the lineage still says which file it was when read from elsewhere.
    lineage.data.path = std::filesystem::absolute(cmd.data).string();
    lineage.data.rows = data_rows;
    if (!cmd.test.empty()) {
      auto test_print = FingerprintFile(cmd.test);
      if (!test_print.ok()) return Fail(test_print.status());
      lineage.test = *test_print;
      lineage.test.path = std::filesystem::absolute(cmd.test).string();
      lineage.test.rows = test.size();
    }
    lineage.split = cmd.split;
    lineage.train_interactions = train.size();
    lineage.test_interactions = test.size();
    if (result) {
      const nlohmann::json metrics = result->ToJson();  // items() must not outlive it
      for (const auto& [key, value] : metrics.items()) {
        if (value.is_number()) lineage.metrics[key] = value.get<double>();
      }
    }
    auto s = SaveModel(*model, cmd.out);
    if (!s.ok()) return Fail(s.status());
    saved = *s;
    if (!cmd.quiet) {
      std::fprintf(stderr, "model %s written to %s\n", saved->version.c_str(),
                   saved->path.c_str());
    }
  }
  if (!result) {
    if (!cmd.quiet) std::fprintf(stderr, "no --test or --split: no held-out metrics\n");
    return 0;
  }
  if (cmd.json) {
    nlohmann::json out = result->ToJson();
    out["algorithm"] = cmd.algorithm;
    out["feedback"] = cmd.feedback;
    out["train_seconds"] = train_seconds;
    out["baseline"] = baseline->ToJson();
    if (saved) {
      out["model_version"] = saved->version;
      out["model_path"] = saved->path;
    }
    std::cout << out.dump() << std::endl;
  } else {
    PrintTable(cmd.algorithm, *result, *baseline);
  }
  return 0;
}

int RunEval(const EvalCommand& cmd) {
  if (cmd.k < 1) return Fail(absl::InvalidArgumentError("--k must be >= 1"));
  auto model = LoadModel(cmd.model);
  if (!model.ok()) return Fail(model.status());
  auto read_options = MakeReadOptions(cmd.input, model->params.feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  auto test = Read(cmd.test, *read_options, /*quiet=*/cmd.json);
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
  for (const auto& [key, value] : j.items()) std::printf("%-20s %s\n", key.c_str(), value.dump().c_str());
  return 0;
}

int RunModelInfo(const ModelInfoCommand& cmd) {
  auto info = DescribeModel(cmd.model, cmd.json);
  if (!info.ok()) return Fail(info.status());
  std::cout << *info;
  return 0;
}

int RunDemo(const DemoCommand& cmd) {
  std::printf("recloop demo: a synthetic store of %d customers, %d items and %lld interactions "
              "with %d planted taste clusters\n\n",
              cmd.generator.users, cmd.generator.items,
              static_cast<long long>(cmd.generator.interactions), cmd.generator.clusters);
  std::fflush(stdout);  // before the progress lines on stderr
  auto store = GenerateStore(cmd.generator);
  if (!store.ok()) return Fail(store.status());
  SplitSpec spec;
  spec.kind = SplitSpec::Kind::kUser;
  spec.fraction = 0.2;
  auto split = Split(store->data, spec, cmd.generator.seed);
  if (!split.ok()) return Fail(split.status());

  TrainOptions options;
  options.als.feedback = cmd.generator.feedback;
  IterationCallback progress;
  if (!cmd.quiet) {
    progress = [&](const IterationStats& s) {
      PrintProgress(s, options.als.iterations, options.als.feedback);
    };
  }
  auto model = TrainModel(split->train, options, progress);
  if (!model.ok()) return Fail(model.status());
  auto result = Evaluate(*model, split->test, EvalOptions{});
  if (!result.ok()) return Fail(result.status());
  auto baseline = Evaluate(TrainPopular(split->train, options.als.feedback), split->test, {});
  if (!baseline.ok()) return Fail(baseline.status());
  std::printf("held-out metrics (20%% of each customer's interactions):\n");
  PrintTable("als", *result, *baseline);

  // Recommendations for a few customers, with the planted cluster of each item: a working model
  // recommends mostly from the customer's own cluster.
  const IdMap& gen_items = store->data.items;
  const IdMap& gen_users = store->data.users;
  std::vector<float> scores(model->num_items());
  std::printf("\ntop 5 recommendations (item [its cluster]) for a few customers:\n");
  for (int32_t u = 0; u < std::min(model->num_users(), 3); ++u) {
    const std::string& name = model->users.External(u);
    const int32_t cluster = store->user_cluster[*gen_users.Find(name)];
    model->ScoreItems(u, scores);
    const auto top = TopK(scores, 5, model->seen.RowIndices(u));
    std::printf("  customer %-7s (cluster %2d):", name.c_str(), cluster);
    for (const auto& s : top) {
      const std::string& item = model->items.External(s.item);
      std::printf(" %s[%d]", item.c_str(), store->item_cluster[*gen_items.Find(item)]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace recloop
