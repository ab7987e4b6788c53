#include "training/pipeline.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/timer.h"
#include "data/event_interactions.h"
#include "data/event_store.h"
#include "data/split.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"

namespace recloop {

float RatingNeutral(const Interactions& data) {
  if (data.value.empty()) return kDefaultRatingNeutral;
  const auto [lo, hi] = std::minmax_element(data.value.begin(), data.value.end());
  return std::round(*lo + *hi) / 2.0f;
}

Interactions RatingsAsPreferences(Interactions ratings, float neutral) {
  for (float& v : ratings.value) v = RatingPreference(v, neutral);
  return ratings;
}

TrainOptions MakeTrainOptions(const ModelSettings& settings) {
  TrainOptions options;
  options.algorithm = settings.algorithm;
  options.als = settings.als;
  options.feedback = settings.feedback;
  options.bpmf = settings.bpmf;
  options.ease = settings.ease;
  options.popularity = settings.popularity;
  return options;
}

absl::StatusOr<Interactions> ReadDataFile(const std::string& path, const ReadOptions& options,
                                          Logger* log) {
  const Timer timer;
  ReadStats stats;
  ASSIGN_OR_RETURN(Interactions data, ReadInteractions(path, options, &stats));
  log->Info("read %s: %lld interactions, %d users, %d items (%.2f s)", path,
            static_cast<long long>(data.size()), data.users.size(), data.items.size(),
            timer.Seconds());
  if (stats.duplicates_merged > 0) {
    log->Info("  merged %lld duplicate (user, item) rows",
              static_cast<long long>(stats.duplicates_merged));
  }
  // A warning: these are data the user asked us to drop, worth seeing even without progress.
  if (stats.rows_skipped > 0) {
    log->Warning("  skipped %lld malformed rows; first: %s",
                 static_cast<long long>(stats.rows_skipped), stats.first_skipped);
  }
  return data;
}

namespace {

absl::StatusOr<std::unique_ptr<EventStore>> OpenExistingEventStore(const std::string& path) {
  return EventStore::OpenExisting(path);
}

void LogIteration(const IterationStats& s, int total, FeedbackKind feedback, Logger* log) {
  if (feedback == FeedbackKind::kExplicit) {
    log->Info("iteration %2d/%d  loss %.6e  train_rmse %.4f  %.2f s", s.iteration, total, s.loss,
              s.train_rmse, s.seconds);
  } else {
    log->Info("iteration %2d/%d  loss %.6e  %.2f s", s.iteration, total, s.loss, s.seconds);
  }
}

// Every tenth sweep and the last.
void LogSweep(const BpmfSweepStats& s, int sweeps, Logger* log) {
  if (s.sweep % 10 != 0 && s.sweep != sweeps) return;
  std::string line = absl::StrFormat("sweep %3d/%d%s  alpha %.3f  train_rmse %.4f", s.sweep, sweeps,
                                     s.burn_in ? " (burn-in)" : "", s.alpha, s.train_rmse);
  if (s.probe_rmse > 0)
    absl::StrAppendFormat(&line, "  test_rmse (average so far) %.4f", s.probe_rmse);
  absl::StrAppendFormat(&line, "  %.3f s", s.seconds);
  log->Info("%s", line);
}

// The input of `run` as interactions; an event store also names its last event in `lineage`.
absl::StatusOr<Interactions> ReadInput(const TrainRun& run, ModelLineage* lineage, Logger* log) {
  if (run.events.empty()) return ReadDataFile(run.data, run.read, log);
  // Read as the server's retrainer reads it (data/event_interactions.h): the same event values,
  // so that a model trained here and one retrained in the server agree.
  ASSIGN_OR_RETURN(std::unique_ptr<EventStore> store, OpenExistingEventStore(run.events));
  ASSIGN_OR_RETURN(const int64_t last, store->LastSeq());
  EventDataOptions options;
  options.feedback = run.model.feedback;
  options.through_seq = last;
  // An event store is identified by its path and the last event read: the store keeps growing,
  // so a hash of its file would name nothing reproducible.
  lineage->events_through_seq = last;
  lineage->events_store_id = store->id();
  const Timer timer;
  EventDataStats stats;
  ASSIGN_OR_RETURN(Interactions data, EventInteractions(*store, options, &stats));
  log->Info("read %s: %lld events (%lld used), %lld interactions, %d users, %d items (%.2f s)",
            run.events, static_cast<long long>(stats.events_read),
            static_cast<long long>(stats.events_used), static_cast<long long>(data.size()),
            data.users.size(), data.items.size(), timer.Seconds());
  return data;
}

struct TrainTest {
  Interactions train;
  Interactions test;
};

// The input cut by the run's split spec, or the input with the run's test file (if any).
absl::StatusOr<TrainTest> SplitInput(const TrainRun& run, Interactions data, Logger* log) {
  TrainTest out;
  if (!run.split.empty()) {
    ASSIGN_OR_RETURN(const SplitSpec spec, ParseSplitSpec(run.split));
    ASSIGN_OR_RETURN(SplitResult split, Split(data, spec, run.model.als.seed));
    out.train = std::move(split.train);
    out.test = std::move(split.test);
    log->Info("split %s: %lld train, %lld test", run.split,
              static_cast<long long>(out.train.size()), static_cast<long long>(out.test.size()));
    return out;
  }
  out.train = std::move(data);
  if (!run.test.empty()) {
    ASSIGN_OR_RETURN(out.test, ReadDataFile(run.test, run.read, log));
  }
  return out;
}

// `train --events STORE --base MODELS`: the server's retrain (training/retrain.h), offline.
absl::StatusOr<TrainReport> RetrainFromBase(const TrainRun& run, Logger* log) {
  ASSIGN_OR_RETURN(std::unique_ptr<EventStore> store, OpenExistingEventStore(run.events));
  ASSIGN_OR_RETURN(FactorModel base, LoadModel(run.base));
  RetrainOptions options;
  options.train = TrainOptionsFor(base, run.model.als.iterations);
  const Timer timer;
  ASSIGN_OR_RETURN(RetrainResult result, Retrain(*store, &base, options));
  TrainReport report;
  report.train_seconds = timer.Seconds();
  report.train_interactions = result.train_interactions;
  report.new_events = result.new_events;
  report.gate = result.gate;
  report.model = std::move(result.model);
  const GateResult& gate = *report.gate;
  log->Info("retrained from %s on %lld interactions (%lld new events) in %.2f s",
            base.lineage.version, static_cast<long long>(report.train_interactions),
            static_cast<long long>(report.new_events), report.train_seconds);
  log->Warning("gate %s: %s", gate.skipped ? "skipped" : (gate.passed ? "passed" : "refused"),
               gate.reason);
  if (run.out.empty()) return report;
  // The base's rating head carries over: the retrain changes the ranking, not the predictor.
  ASSIGN_OR_RETURN(report.rating_head_model, LoadRatingHead(run.base));
  SaveModelOptions save;
  save.make_current = gate.passed;
  if (report.rating_head_model) save.rating_head = &*report.rating_head_model;
  const std::string dir = gate.passed ? run.out : run.out + "/refused";
  ASSIGN_OR_RETURN(report.saved,
                   SaveModel(report.model, dir, WithItemIndex(report.model, run.index, log, save)));
  log->Warning("model %s written to %s%s", report.saved->version, report.saved->path,
               gate.passed ? "" : " (not current: the gate refused it)");
  return report;
}

// Names the run's inputs and metrics in the model's lineage, and saves it with its index.
absl::Status Save(const TrainRun& run, const TrainTest& data, TrainReport* report, Logger* log) {
  ModelLineage& lineage = report->model.lineage;
  LineageInputs inputs;
  inputs.data_path = run.events.empty() ? run.data : run.events;
  inputs.data_is_store = !run.events.empty();
  inputs.data_rows = report->data_rows;
  inputs.test_path = run.test;
  inputs.test_rows = data.test.size();
  // Hashed only when the model is kept: it costs a second read of the data file.
  RETURN_IF_ERROR(RecordInputs(inputs, &lineage));
  lineage.split = run.split;
  lineage.train_interactions = data.train.size();
  lineage.test_interactions = data.test.size();
  if (report->eval) RecordMetrics(*report->eval, &lineage);
  SaveModelOptions save;
  if (report->rating_head_model) {
    // The head was fitted on the same inputs; its metrics are its own (FitRatingHead).
    FactorModel& head = *report->rating_head_model;
    std::map<std::string, double> metrics = std::move(head.lineage.metrics);
    head.lineage = lineage;
    head.lineage.metrics = std::move(metrics);
    save.rating_head = &head;
  }
  ASSIGN_OR_RETURN(report->saved, SaveModel(report->model, run.out,
                                            WithItemIndex(report->model, run.index, log, save)));
  log->Info("model %s written to %s", report->saved->version, report->saved->path);
  return absl::OkStatus();
}

// The rating head of a run that ranks ratings: bpmf on the training ratings, evaluated on
// `test` when there is one (its RMSE and MAE also into the ranking model's lineage).
absl::Status FitRatingHead(const Interactions& train, const Interactions& test,
                           const ModelSettings& settings, const EvalOptions& eval_options,
                           TrainReport* report, Logger* log) {
  TrainOptions head = MakeTrainOptions(settings);
  head.algorithm = Algorithm::kBpmf;
  const Timer timer;
  ASSIGN_OR_RETURN(report->rating_head_model, TrainModel(train, head));
  if (test.empty()) {
    log->Info("rating head: bpmf (%.2f s)", timer.Seconds());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(report->rating_head, Evaluate(*report->rating_head_model, test, eval_options));
  const EvalResult& eval = *report->rating_head;
  if (eval.rmse) report->model.lineage.metrics["rating_head/rmse"] = *eval.rmse;
  if (eval.mae) report->model.lineage.metrics["rating_head/mae"] = *eval.mae;
  RecordMetrics(eval, &report->rating_head_model->lineage);
  log->Info("rating head: bpmf, test rmse %.4f (%.2f s)", eval.rmse.value_or(0), timer.Seconds());
  return absl::OkStatus();
}

}  // namespace

std::vector<SelectionCandidate> SelectionCandidates(const TrainOptions& base, int64_t users,
                                                    int32_t items) {
  std::vector<SelectionCandidate> out;
  TrainOptions als = base;
  als.algorithm = Algorithm::kAls;
  out.push_back({"als", als});
  if (items <= std::min(base.ease.max_items, kAutoEaseMaxItems) &&
      EaseTrainingBytes(users, items) <= kAutoEaseMaxBytes) {
    for (const float lambda : {100.0f, 1000.0f}) {
      TrainOptions ease = base;
      ease.algorithm = Algorithm::kEase;
      ease.ease.regularization = lambda;
      out.push_back({absl::StrFormat("ease(%g)", lambda), ease});
    }
  }
  return out;
}

absl::StatusOr<TrainOptions> SelectRankingModel(const Interactions& train, const TrainOptions& base,
                                                int k, uint64_t seed, double budget_seconds,
                                                Logger* log,
                                                std::map<std::string, double>* metrics) {
  const std::vector<SelectionCandidate> candidates =
      SelectionCandidates(base, train.users.size(), static_cast<int32_t>(train.items.size()));
  if (candidates.size() == 1) return candidates[0].options;
  SplitSpec spec;
  spec.fraction = 0.1;
  ASSIGN_OR_RETURN(const SplitResult split, Split(train, spec, seed));
  // Too little to choose on: a handful of validation rows would pick by noise.
  constexpr int64_t kMinValidation = 200;
  if (split.test.size() < kMinValidation) {
    log->Info("select: %s (only %lld validation rows: too few to choose on)", candidates[0].name,
              static_cast<long long>(split.test.size()));
    return candidates[0].options;
  }
  EvalOptions eval;
  eval.k = k;
  eval.relevance_threshold = 1e-6f;  // disliked items are not what a list should find
  const Timer timer;
  size_t best = 0;
  double best_ndcg = -1.0;
  for (size_t c = 0; c < candidates.size(); ++c) {
    if (c > 0 && timer.Seconds() > budget_seconds) {
      log->Info("select: time budget of %.0f s spent; %d candidates not tried (from %s)",
                budget_seconds, static_cast<int>(candidates.size() - c), candidates[c].name);
      break;
    }
    ASSIGN_OR_RETURN(const FactorModel model, TrainModel(split.train, candidates[c].options));
    ASSIGN_OR_RETURN(const EvalResult result, Evaluate(model, split.test, eval));
    log->Info("select: %s validation ndcg@%d %.4f", candidates[c].name, k, result.ndcg);
    (*metrics)[absl::StrCat("select/", candidates[c].name, "/ndcg@", k)] = result.ndcg;
    if (result.ndcg > best_ndcg) {
      best_ndcg = result.ndcg;
      best = c;
    }
  }
  log->Info("select: %s chosen of %d ranking models (%.2f s on a 10%% validation split)",
            candidates[best].name, static_cast<int>(candidates.size()), timer.Seconds());
  return candidates[best].options;
}

absl::StatusOr<TrainReport> TrainAndEvaluate(const Interactions& train, const Interactions& test,
                                             const ModelSettings& settings, int k, Logger* log) {
  TrainOptions options = MakeTrainOptions(settings);
  // Ratings ranked: an implicit model on the preferences the ratings express.
  std::optional<Interactions> preferences;
  if (settings.rank_ratings && settings.feedback == FeedbackKind::kExplicit) {
    if (options.algorithm == Algorithm::kBpmf) options.algorithm = Algorithm::kAls;
    options.feedback = FeedbackKind::kImplicit;
    options.rating_neutral = RatingNeutral(train);
    preferences = RatingsAsPreferences(train, options.rating_neutral);
    log->Info("ranking model: implicit %s on the ratings as preferences (neutral rating %.1f)",
              std::string(ToString(options.algorithm)), options.rating_neutral);
  }
  const Interactions& fit_on = preferences ? *preferences : train;
  std::map<std::string, double> selection;
  if (settings.auto_select && options.feedback == FeedbackKind::kImplicit) {
    ASSIGN_OR_RETURN(options, SelectRankingModel(fit_on, options, k, settings.als.seed,
                                                 settings.select_budget_seconds, log, &selection));
  }
  TrainHooks hooks;
  hooks.on_iteration = [&](const IterationStats& s) {
    LogIteration(s, settings.als.iterations, settings.feedback, log);
  };
  BpmfReport bpmf_report;
  const int sweeps = settings.bpmf.burn_in + settings.bpmf.samples;
  const bool probe = settings.algorithm == Algorithm::kBpmf && !test.empty();
  if (settings.algorithm == Algorithm::kBpmf) {
    hooks.on_sweep = [&](const BpmfSweepStats& s) { LogSweep(s, sweeps, log); };
    if (probe) {
      hooks.probe = &test;
      hooks.bpmf_report = &bpmf_report;
    }
  }
  const Timer timer;
  TrainReport report;
  ASSIGN_OR_RETURN(report.model, TrainModel(fit_on, options, hooks));
  report.model.lineage.metrics.insert(selection.begin(), selection.end());
  report.train_seconds = timer.Seconds();
  report.train_interactions = train.size();
  report.test_interactions = test.size();
  if (probe) report.bpmf = bpmf_report;
  EvalOptions eval_options;
  eval_options.k = k;
  if (!test.empty()) {
    ASSIGN_OR_RETURN(report.eval, Evaluate(report.model, test, eval_options));
    ASSIGN_OR_RETURN(report.baseline,
                     Evaluate(TrainPopular(train, settings.feedback), test, eval_options));
  }
  if (preferences && settings.rating_head) {
    RETURN_IF_ERROR(FitRatingHead(train, test, settings, eval_options, &report, log));
  }
  return report;
}

absl::StatusOr<TrainReport> RunTraining(const TrainRun& run, Logger* log) {
  if (!run.base.empty()) return RetrainFromBase(run, log);
  if (!run.split.empty()) RETURN_IF_ERROR(ParseSplitSpec(run.split).status());  // before reading
  ModelLineage input_lineage;
  ASSIGN_OR_RETURN(Interactions data, ReadInput(run, &input_lineage, log));
  const int64_t data_rows = data.size();
  ASSIGN_OR_RETURN(TrainTest split, SplitInput(run, std::move(data), log));
  ASSIGN_OR_RETURN(TrainReport report,
                   TrainAndEvaluate(split.train, split.test, run.model, run.k, log));
  report.data_rows = data_rows;
  log->Info("trained %s in %.2f s", std::string(ToString(report.model.params.algorithm)),
            report.train_seconds);
  if (report.bpmf) {
    log->Info(
        "thinning: test rmse %.4f averaging all %d samples, %.4f served (%d samples, %d "
        "dimensions)",
        report.bpmf->probe_rmse_all_samples, run.model.bpmf.samples, report.bpmf->probe_rmse_served,
        run.model.bpmf.served_samples, static_cast<int>(report.model.item_factors.cols()));
  }
  if (run.out.empty()) return report;
  report.model.lineage.events_through_seq = input_lineage.events_through_seq;
  report.model.lineage.events_store_id = input_lineage.events_store_id;
  RETURN_IF_ERROR(Save(run, split, &report, log));
  return report;
}

SaveModelOptions WithItemIndex(const FactorModel& model, const ItemIndexOptions& index, Logger* log,
                               SaveModelOptions base) {
  if (!model.has_factors()) return base;
  base.write_extra_files = [&model, index, log](const std::string& version_dir) -> absl::Status {
    const Timer timer;
    ASSIGN_OR_RETURN(ItemIndex built, ItemIndex::Build(model, index));
    if (built.measured_recall() >= 0) {
      log->Info(
          "built the %s item index of %d items in %.2f s: efSearch %d, recall@10 %.3f "
          "against exact search on a sample of users",
          std::string(ToString(built.type())), built.num_items(), timer.Seconds(),
          built.default_ef_search(), built.measured_recall());
    } else {
      log->Info("built the %s item index of %d items in %.2f s",
                std::string(ToString(built.type())), built.num_items(), timer.Seconds());
    }
    return built.Save(version_dir + "/" + kItemIndexFileName);
  };
  return base;
}

absl::Status RecordInputs(const LineageInputs& inputs, ModelLineage* lineage) {
  if (!inputs.data_is_store) {
    ASSIGN_OR_RETURN(lineage->data, FingerprintFile(inputs.data_path));
  }
  // Absolute, so that the lineage still says which file it was when read from elsewhere.
  lineage->data.path = std::filesystem::absolute(inputs.data_path).string();
  lineage->data.rows = inputs.data_rows;
  if (!inputs.test_path.empty()) {
    ASSIGN_OR_RETURN(lineage->test, FingerprintFile(inputs.test_path));
    lineage->test.path = std::filesystem::absolute(inputs.test_path).string();
    lineage->test.rows = inputs.test_rows;
  }
  return absl::OkStatus();
}

void RecordMetrics(const EvalResult& eval, ModelLineage* lineage) {
  const nlohmann::json metrics = eval.ToJson();  // items() must not outlive it
  for (const auto& [key, value] : metrics.items()) {
    if (value.is_number()) lineage->metrics[key] = value.get<double>();
  }
}

}  // namespace recloop
