#include "tools/commands.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/event_interactions.h"
#include "data/event_store.h"
#include "data/item_reader.h"
#include "data/split.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "engine/recommender.h"
#include "engine/status_macros.h"
#include "engine/top_k.h"
#include "nlohmann/json.hpp"
#include "serving/catalog_store.h"
#include "serving/live_model.h"
#include "tbb/parallel_for.h"
#include "training/retrain.h"

namespace recloop {

int Fail(const absl::Status& s) {
  std::cerr << "recloop: " << s.message() << "\n";
  return 1;
}

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

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

namespace {

// Opens an event store that must exist already (EventStore::Open would create an empty one).
absl::StatusOr<std::unique_ptr<EventStore>> OpenExistingEventStore(const std::string& path) {
  if (!std::filesystem::exists(path)) return absl::NotFoundError("no event store at " + path);
  return EventStore::Open({path});
}

}  // namespace

absl::StatusOr<Interactions> ReadDataFile(const std::string& path, const ReadOptions& options,
                                          bool quiet) {
  const auto start = Clock::now();
  ReadStats stats;
  ASSIGN_OR_RETURN(Interactions data, ReadInteractions(path, options, &stats));
  if (!quiet) {
    std::fprintf(stderr, "read %s: %lld interactions, %d users, %d items (%.2f s)\n", path.c_str(),
                 static_cast<long long>(data.size()), data.users.size(), data.items.size(),
                 SecondsSince(start));
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

absl::Status WriteIndex(const TrainCommand& cmd, const FactorModel& model,
                        const std::string& version_dir) {
  ItemIndexOptions index_options = cmd.index_options;
  ASSIGN_OR_RETURN(index_options.type, ParseIndexType(cmd.index));
  const auto index_start = Clock::now();
  ASSIGN_OR_RETURN(ItemIndex index, ItemIndex::Build(model, index_options));
  if (!cmd.quiet) {
    std::fprintf(stderr, "built the %s item index of %d items in %.2f s\n",
                 std::string(ToString(index.type())).c_str(), index.num_items(),
                 SecondsSince(index_start));
  }
  return index.Save(version_dir + "/" + kItemIndexFileName);
}

namespace {

void PrintProgress(const IterationStats& s, int total, Feedback feedback) {
  if (feedback == Feedback::kExplicit) {
    std::fprintf(stderr, "iteration %2d/%d  loss %.6e  train_rmse %.4f  %.2f s\n", s.iteration,
                 total, s.loss, s.train_rmse, s.seconds);
  } else {
    std::fprintf(stderr, "iteration %2d/%d  loss %.6e  %.2f s\n", s.iteration, total, s.loss,
                 s.seconds);
  }
}

// A model with its item index (engine's LoadOrBuildItemIndex).
absl::StatusOr<Recommender> LoadRecommender(const std::string& path) {
  ASSIGN_OR_RETURN(std::string dir, ResolveModelDir(path));
  ASSIGN_OR_RETURN(FactorModel loaded, LoadModel(dir));
  auto model = std::make_shared<const FactorModel>(std::move(loaded));
  ASSIGN_OR_RETURN(auto index, LoadOrBuildItemIndex(*model, dir));
  return Recommender::Create(model, std::move(index));
}

nlohmann::json ItemsJson(const FactorModel& model, const std::vector<Recommendation>& recs) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& r : recs) {
    items.push_back({{"item", model.items.External(r.item)},
                     {"score", r.score},
                     {"source", std::string(ToString(r.source))}});
  }
  return items;
}

// Prints a result list: as one JSON object {key: id, model_version, items} (the server's shape),
// or as a table.
void PrintResult(const char* key, const std::string& id, const FactorModel& model,
                 const std::vector<Recommendation>& recs, bool json) {
  if (json) {
    nlohmann::json out = {
        {key, id}, {"model_version", model.lineage.version}, {"items", ItemsJson(model, recs)}};
    std::cout << out.dump() << std::endl;
    return;
  }
  for (size_t rank = 0; rank < recs.size(); ++rank) {
    std::printf("%3zu  %-20s %10.4f  %s\n", rank + 1, model.items.External(recs[rank].item).c_str(),
                recs[rank].score, std::string(ToString(recs[rank].source)).c_str());
  }
}

}  // namespace

int RunRecommend(const RecommendCommand& cmd) {
  if (cmd.n < 1) return Fail(absl::InvalidArgumentError("--n must be >= 1"));
  if (cmd.all == !cmd.user.empty()) {
    return Fail(absl::InvalidArgumentError("give exactly one of --user U and --all"));
  }
  if (cmd.all && cmd.out.empty()) return Fail(absl::InvalidArgumentError("--all needs --out FILE"));
  auto rec = LoadRecommender(cmd.model);
  if (!rec.ok()) return Fail(rec.status());
  const FactorModel& model = rec->model();
  RecommendOptions options;
  options.n = cmd.n;
  if (!cmd.all) {
    // An unknown user is not an error: it gets popular items (source "popular"), as the server
    // will answer a new customer.
    const int32_t u = model.users.Find(cmd.user).value_or(-1);
    auto recs = rec->Recommend(u, options);
    if (!recs.ok()) return Fail(recs.status());
    PrintResult("user", cmd.user, model, *recs, cmd.json);
    return 0;
  }
  // Every user, in parallel; rows are written in user order.
  const int32_t users = model.num_users();
  std::vector<std::string> rows(users);
  std::atomic<int32_t> done{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mu;
  const auto start = Clock::now();
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, users, 64), [&](const auto& range) {
    for (int32_t u = range.begin(); u != range.end(); ++u) {
      auto recs = rec->Recommend(u, options);
      if (!recs.ok()) {
        std::lock_guard<std::mutex> lock(error_mu);
        failed = true;
        error = std::string(recs.status().message());
        return;
      }
      std::string& row = rows[u];
      for (size_t r = 0; r < recs->size(); ++r) {
        const auto& x = (*recs)[r];
        row += model.users.External(u) + "," + std::to_string(r + 1) + "," +
               model.items.External(x.item) + "," + std::to_string(x.score) + "\n";
      }
    }
    const int32_t d = done.fetch_add(range.size()) + range.size();
    if (users >= 10000 && d * 20 / users != (d - range.size()) * 20 / users) {
      std::fprintf(stderr, "\rrecommend: %3d%% (%d/%d users)", d * 100 / users, d, users);
    }
  });
  if (users >= 10000) std::fprintf(stderr, "\n");
  if (failed) return Fail(absl::InternalError(error));
  std::ofstream out(cmd.out, std::ios::binary | std::ios::trunc);
  out << "user,rank,item,score\n";
  for (const auto& row : rows) out << row;
  if (!out.flush()) return Fail(absl::InternalError(cmd.out + ": write failed"));
  const double seconds = SecondsSince(start);
  std::fprintf(stderr, "wrote %s: %d users x %d items in %.2f s (%.0f users/s)\n", cmd.out.c_str(),
               users, cmd.n, seconds, users / std::max(seconds, 1e-9));
  return 0;
}

int RunServeCommand(ServeCommand cmd) {
  ServeOptions& o = cmd.serve;
  o.http.idle_timeout = std::chrono::milliseconds(cmd.idle_timeout_ms);
  o.http.read_timeout = std::chrono::milliseconds(cmd.read_timeout_ms);
  o.http.drain_timeout = std::chrono::milliseconds(cmd.drain_timeout_ms);
  // The key never comes from the command line (it would show in ps and shell history).
  if (!cmd.api_key_file.empty()) {
    std::ifstream in(cmd.api_key_file);
    if (!in) return Fail(absl::NotFoundError("cannot read --api-key-file " + cmd.api_key_file));
    std::getline(in, o.api.api_key);
    if (o.api.api_key.empty()) {
      return Fail(absl::InvalidArgumentError("--api-key-file " + cmd.api_key_file +
                                             " has an empty first line"));
    }
  } else if (const char* env = std::getenv("RECLOOP_API_KEY"); env != nullptr && *env != 0) {
    o.api.api_key = env;
  }
  if (o.api.default_n < 1 || o.api.max_n < o.api.default_n) {
    return Fail(absl::InvalidArgumentError("need 1 <= --default-n <= --max-n"));
  }
  if (absl::Status s = RunServe(o); !s.ok()) return Fail(s);
  return 0;
}

int RunSimilar(const SimilarCommand& cmd) {
  if (cmd.n < 1) return Fail(absl::InvalidArgumentError("--n must be >= 1"));
  auto rec = LoadRecommender(cmd.model);
  if (!rec.ok()) return Fail(rec.status());
  const FactorModel& model = rec->model();
  const auto item = model.items.Find(cmd.item);
  if (!item) return Fail(absl::NotFoundError("unknown item '" + cmd.item + "'"));
  RecommendOptions options;
  options.n = cmd.n;
  auto recs = rec->Similar(*item, options);
  if (!recs.ok()) return Fail(recs.status());
  PrintResult("item", cmd.item, model, *recs, cmd.json);
  return 0;
}

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

namespace {

// `train --events STORE --base MODELS`: the server's retrain (training/retrain.h), offline.
int RunRetrainFromBase(const TrainCommand& cmd) {
  if (cmd.events.empty()) return Fail(absl::InvalidArgumentError("--base needs --events"));
  auto store = OpenExistingEventStore(cmd.events);
  if (!store.ok()) return Fail(store.status());
  auto base = LoadModel(cmd.base);
  if (!base.ok()) return Fail(base.status());
  RetrainOptions options;
  options.train = TrainOptionsFor(*base, cmd.als.iterations);
  const auto start = Clock::now();
  auto result = Retrain(**store, &*base, options);
  if (!result.ok()) return Fail(result.status());
  const GateResult& gate = result->gate;
  if (!cmd.quiet) {
    std::fprintf(stderr, "retrained from %s on %lld interactions (%lld new events) in %.2f s\n",
                 base->lineage.version.c_str(), static_cast<long long>(result->train_interactions),
                 static_cast<long long>(result->new_events), SecondsSince(start));
  }
  std::fprintf(stderr, "gate %s: %s\n",
               gate.skipped ? "skipped" : (gate.passed ? "passed" : "refused"),
               gate.reason.c_str());
  if (cmd.out.empty()) return gate.passed ? 0 : 3;
  SaveModelOptions save;
  save.make_current = gate.passed;
  if (result->model.has_factors()) {
    save.write_extra_files = [&](const std::string& dir) {
      return WriteIndex(cmd, result->model, dir);
    };
  }
  const std::string dir = gate.passed ? cmd.out : cmd.out + "/refused";
  auto saved = SaveModel(result->model, dir, save);
  if (!saved.ok()) return Fail(saved.status());
  std::fprintf(stderr, "model %s written to %s%s\n", saved->version.c_str(), saved->path.c_str(),
               gate.passed ? "" : " (not current: the gate refused it)");
  return gate.passed ? 0 : 3;
}

}  // namespace

int RunTrain(const TrainCommand& cmd) {
  if (cmd.distributed) return RunDistributedTrain(cmd);
  if (!cmd.base.empty()) return RunRetrainFromBase(cmd);
  TrainOptions options;
  auto feedback = ParseFeedback(cmd.feedback);
  if (!feedback.ok()) return Fail(feedback.status());
  const std::string algorithm_name = AlgorithmOrDefault(cmd.algorithm, *feedback);
  auto algorithm = ParseAlgorithm(algorithm_name);
  if (!algorithm.ok()) return Fail(algorithm.status());
  options.algorithm = *algorithm;
  options.als = cmd.als;
  options.feedback = *feedback;
  options.bpmf = cmd.bpmf;
  options.popularity = cmd.popularity;
  if (absl::Status s = ValidatePopularityOptions(options.popularity); !s.ok()) return Fail(s);
  if (options.algorithm == Algorithm::kAls) {
    if (absl::Status s = ValidateAlsOptions(options.als); !s.ok()) return Fail(s);
  }
  if (options.algorithm == Algorithm::kBpmf) {
    if (*feedback != Feedback::kExplicit) {
      return Fail(absl::InvalidArgumentError(
          "bpmf models explicit ratings: use --algorithm als for implicit feedback"));
    }
    if (absl::Status s = ValidateBpmfOptions(options.bpmf); !s.ok()) return Fail(s);
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

  if (cmd.data.empty() == cmd.events.empty()) {
    return Fail(absl::InvalidArgumentError("give exactly one of --data and --events"));
  }
  // An event store is read as the server's retrainer reads it (data/event_interactions.h):
  // the same event values, so that a model trained here and one retrained in the server agree.
  absl::StatusOr<Interactions> data;
  int64_t events_through_seq = 0;
  std::string events_store_id;
  if (!cmd.events.empty()) {
    auto store = OpenExistingEventStore(cmd.events);
    if (!store.ok()) return Fail(store.status());
    auto last = (*store)->LastSeq();
    if (!last.ok()) return Fail(last.status());
    EventDataOptions event_options;
    event_options.feedback = *feedback;
    event_options.through_seq = events_through_seq = *last;
    events_store_id = (*store)->id();
    const auto read_start = Clock::now();
    EventDataStats stats;
    data = EventInteractions(**store, event_options, &stats);
    if (data.ok() && !cmd.quiet) {
      std::fprintf(stderr,
                   "read %s: %lld events (%lld used), %lld interactions, %d users, %d items "
                   "(%.2f s)\n",
                   cmd.events.c_str(), static_cast<long long>(stats.events_read),
                   static_cast<long long>(stats.events_used), static_cast<long long>(data->size()),
                   data->users.size(), data->items.size(), SecondsSince(read_start));
    }
  } else {
    data = ReadDataFile(cmd.data, *read_options, cmd.quiet);
  }
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
      auto t = ReadDataFile(cmd.test, *read_options, cmd.quiet);
      if (!t.ok()) return Fail(t.status());
      test = std::move(*t);
    }
  }

  const auto start = Clock::now();
  IterationCallback progress;
  if (!cmd.quiet) {
    progress = [&](const IterationStats& s) {
      PrintProgress(s, options.als.iterations, options.feedback);
    };
  }
  TrainRun run;
  run.on_iteration = progress;
  BpmfReport bpmf_report;
  BpmfCallback sweep_progress;
  if (options.algorithm == Algorithm::kBpmf) {
    const int sweeps = options.bpmf.burn_in + options.bpmf.samples;
    if (!cmd.quiet) {
      sweep_progress = [sweeps](const BpmfSweepStats& s) {
        if (s.sweep % 10 != 0 && s.sweep != sweeps) return;
        std::fprintf(stderr, "sweep %3d/%d%s  alpha %.3f  train_rmse %.4f", s.sweep, sweeps,
                     s.burn_in ? " (burn-in)" : "", s.alpha, s.train_rmse);
        if (s.probe_rmse > 0) std::fprintf(stderr, "  test_rmse (average so far) %.4f", s.probe_rmse);
        std::fprintf(stderr, "  %.3f s\n", s.seconds);
      };
    }
    run.on_sweep = sweep_progress;
    if (!test.empty()) {
      run.probe = &test;
      run.bpmf_report = &bpmf_report;
    }
  }
  auto model = TrainModel(train, options, run);
  if (!model.ok()) return Fail(model.status());
  const double train_seconds = SecondsSince(start);
  if (!cmd.quiet)
    std::fprintf(stderr, "trained %s in %.2f s\n", algorithm_name.c_str(), train_seconds);
  if (run.bpmf_report != nullptr && !cmd.quiet) {
    std::fprintf(stderr,
                 "thinning: test rmse %.4f averaging all %d samples, %.4f served (%d samples, "
                 "%d dimensions)\n",
                 bpmf_report.probe_rmse_all_samples, options.bpmf.samples,
                 bpmf_report.probe_rmse_served, options.bpmf.served_samples,
                 static_cast<int>(model->item_factors.cols()));
  }

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
    if (cmd.events.empty()) {
      // Hashed only when the model is kept: it costs a second read of the data file.
      auto data_print = FingerprintFile(cmd.data);
      if (!data_print.ok()) return Fail(data_print.status());
      lineage.data = *data_print;
    }
    // An event store is identified by its path and the last event read (events_through_seq):
    // the store keeps growing, so a hash of its file would name nothing reproducible.
    lineage.events_through_seq = events_through_seq;
    lineage.events_store_id = events_store_id;
    // Absolute, so that the lineage still says which file it was when read from elsewhere.
    lineage.data.path =
        std::filesystem::absolute(cmd.events.empty() ? cmd.data : cmd.events).string();
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
    SaveModelOptions save_options;
    if (model->has_factors()) {
      // The FAISS index goes into the same version directory, so it is published atomically
      // with the factors it was built from.
      save_options.write_extra_files = [&](const std::string& version_dir) {
        return WriteIndex(cmd, *model, version_dir);
      };
    }
    auto s = SaveModel(*model, cmd.out, save_options);
    if (!s.ok()) return Fail(s.status());
    saved = *s;
    if (!cmd.quiet) {
      std::fprintf(stderr, "model %s written to %s\n", saved->version.c_str(), saved->path.c_str());
    }
  }
  if (!result) {
    if (!cmd.quiet) std::fprintf(stderr, "no --test or --split: no held-out metrics\n");
    return 0;
  }
  if (cmd.json) {
    nlohmann::json out = result->ToJson();
    out["algorithm"] = algorithm_name;
    if (run.bpmf_report != nullptr) {
      out["bpmf_rmse_all_samples"] = bpmf_report.probe_rmse_all_samples;
    }
    out["feedback"] = cmd.feedback;
    out["train_seconds"] = train_seconds;
    out["baseline"] = baseline->ToJson();
    if (saved) {
      out["model_version"] = saved->version;
      out["model_path"] = saved->path;
    }
    std::cout << out.dump() << std::endl;
  } else {
    PrintTable(algorithm_name, *result, *baseline);
  }
  return 0;
}

int RunEval(const EvalCommand& cmd) {
  if (cmd.k < 1) return Fail(absl::InvalidArgumentError("--k must be >= 1"));
  auto model = LoadModel(cmd.model);
  if (!model.ok()) return Fail(model.status());
  auto read_options = MakeReadOptions(cmd.input, model->params.feedback);
  if (!read_options.ok()) return Fail(read_options.status());
  auto test = ReadDataFile(cmd.test, *read_options, /*quiet=*/cmd.json);
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

int RunModelInfo(const ModelInfoCommand& cmd) {
  auto info = DescribeModel(cmd.model, cmd.json);
  if (!info.ok()) return Fail(info.status());
  std::cout << *info;
  return 0;
}

int RunDemo(const DemoCommand& cmd) {
  std::printf(
      "recloop demo: a synthetic store of %d customers, %d items and %lld interactions "
      "with %d planted taste clusters\n\n",
      cmd.generator.users, cmd.generator.items, static_cast<long long>(cmd.generator.interactions),
      cmd.generator.clusters);
  std::fflush(stdout);  // before the progress lines on stderr
  auto store = GenerateStore(cmd.generator);
  if (!store.ok()) return Fail(store.status());
  SplitSpec spec;
  spec.kind = SplitSpec::Kind::kUser;
  spec.fraction = 0.2;
  auto split = Split(store->data, spec, cmd.generator.seed);
  if (!split.ok()) return Fail(split.status());

  TrainOptions options;
  options.feedback = cmd.generator.feedback;
  IterationCallback progress;
  if (!cmd.quiet) {
    progress = [&](const IterationStats& s) {
      PrintProgress(s, options.als.iterations, options.feedback);
    };
  }
  auto model = TrainModel(split->train, options, progress);
  if (!model.ok()) return Fail(model.status());
  auto result = Evaluate(*model, split->test, EvalOptions{});
  if (!result.ok()) return Fail(result.status());
  auto baseline = Evaluate(TrainPopular(split->train, options.feedback), split->test, {});
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
  if (cmd.models.empty()) return 0;

  // The model just evaluated, and each item's planted cluster as its category, for the server.
  auto saved = SaveModel(*model, cmd.models);
  if (!saved.ok()) return Fail(saved.status());
  CatalogMap catalog;
  for (int32_t i = 0; i < model->num_items(); ++i) {
    const std::string& item = model->items.External(i);
    const int32_t generated = *gen_items.Find(item);
    const int32_t cluster = store->item_cluster[generated];
    CatalogEntry& entry = catalog[item];
    entry.categories = {absl::StrCat("cluster-", cluster), GeneratedDepartment(cluster)};
    entry.title = GeneratedItemTitle(generated, cluster);
  }
  {
    auto catalog_store = CatalogStore::Open(DefaultCatalogPath(cmd.models));
    if (!catalog_store.ok()) return Fail(catalog_store.status());
    if (absl::Status s = (*catalog_store)->PutAll(catalog); !s.ok()) return Fail(s);
  }
  const std::string& user = model->users.External(0);
  const int32_t cluster = store->user_cluster[*gen_users.Find(user)];
  const std::string& item = model->items.External(0);
  const std::string base = absl::StrCat("http://", cmd.host, ":", cmd.port);
  std::printf("\nmodel saved in %s (catalogue: each item's categories are its cluster and "
              "that cluster's department, with a generated title)\n",
              saved->path.c_str());
  if (cmd.serve) {
    std::printf("serving it on %s\n  open %s/ in a browser: the demo storefront page\nor try:\n",
                base.c_str(), base.c_str());
  } else {
    std::printf("serve it with `recloop serve --models %s`, then try:\n", cmd.models.c_str());
  }
  std::printf("  curl -s '%s/v1/users/%s/recommendations?n=5'\n", base.c_str(), user.c_str());
  std::printf("  curl -s '%s/v1/users/%s/recommendations?n=5&category=cluster-%d'\n", base.c_str(),
              user.c_str(), cluster);
  std::printf("  curl -s '%s/v1/users/new-customer/recommendations?n=5'   # popular items\n",
              base.c_str());
  std::printf("  curl -s '%s/v1/items/%s/similar?n=5'\n", base.c_str(), item.c_str());
  std::printf("  curl -s '%s/v1/popular?n=5'\n", base.c_str());
  std::printf("  curl -s -X DELETE '%s/v1/items/%s'   # never recommended again\n", base.c_str(),
              item.c_str());
  std::printf("  curl -s -X POST -H 'Content-Type: application/json' -d "
              "'[{\"user\":\"%s\",\"item\":\"%s\",\"type\":\"purchase\"}]' "
              "'%s/v1/feedback'   # then ask again\n",
              user.c_str(), model->items.External(std::min(1, model->num_items() - 1)).c_str(),
              base.c_str());
  std::printf("  curl -s '%s/v1/users/%s/feedback'\n", base.c_str(), user.c_str());
  std::printf("  curl -s '%s/v1/model'\n", base.c_str());
  std::printf("  curl -s '%s/metrics'\n", base.c_str());
  std::fflush(stdout);
  if (!cmd.serve) return 0;
  ServeCommand serve;
  serve.serve.model.models_dir = cmd.models;
  serve.serve.events_path = cmd.models + "/events.db";
  serve.serve.http.host = cmd.host;
  serve.serve.http.port = cmd.port;
  return RunServeCommand(std::move(serve));
}

int RunEventsExport(const EventsExportCommand& cmd) {
  auto store = OpenExistingEventStore(cmd.store);
  if (!store.ok()) return Fail(store.status());
  auto rows = (*store)->ExportCsv(cmd.out);
  if (!rows.ok()) return Fail(rows.status());
  std::fprintf(stderr, "wrote %s: %lld events\n", cmd.out.c_str(), static_cast<long long>(*rows));
  return 0;
}

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
  std::fprintf(stderr, "catalogue %s: %zu items with titles and categories from %s "
               "(a running server reads it when it starts)\n",
               path.c_str(), entries.size(), cmd.movielens_items.c_str());
  return 0;
}

}  // namespace recloop
