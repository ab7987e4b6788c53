// `recloop train`: the flags of a training run, the run itself (training/pipeline.h) and its
// report: a metrics table or one JSON object on stdout.
#include "tools/train_command.h"

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/subcommands.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

// `train --events STORE --base MODELS`: what the server's retrain takes.
absl::StatusOr<TrainRun> RetrainRunOf(const TrainCommand& cmd) {
  if (cmd.events.empty()) return absl::InvalidArgumentError("--base needs --events");
  TrainRun run;
  run.events = cmd.events;
  run.base = cmd.base;
  run.model.als.iterations = cmd.als.iterations;
  run.out = cmd.out;
  run.index = cmd.index_options;
  if (!run.out.empty()) {
    ASSIGN_OR_RETURN(run.index.type, ParseIndexType(cmd.index));
  }
  return run;
}

// The pipeline's run for the flags, or InvalidArgument naming the flag that is wrong. The model
// settings themselves are validated by the trainer.
absl::StatusOr<TrainRun> RunOf(const TrainCommand& cmd, Logger* log) {
  TrainRun run;
  ModelSettings& model = run.model;
  ASSIGN_OR_RETURN(model.feedback, ResolveFeedbackKind(cmd.feedback, cmd.data, cmd.input, log));
  ASSIGN_OR_RETURN(model.algorithm,
                   ParseAlgorithm(AlgorithmOrDefault(cmd.algorithm, model.feedback)));
  if (model.algorithm == Algorithm::kBpmf && model.feedback != FeedbackKind::kExplicit) {
    return absl::InvalidArgumentError(
        "bpmf models explicit ratings: use --algorithm als for implicit feedback");
  }
  model.als = cmd.als;
  ASSIGN_OR_RETURN(model.als.confidence, ParseConfidence(cmd.confidence));
  model.bpmf = cmd.bpmf;
  model.popularity = cmd.popularity;
  model.ease = cmd.ease;
  // Ratings are ranked as preferences by the default model and by ease (a ranking model only).
  model.rank_ratings = cmd.algorithm.empty() || model.algorithm == Algorithm::kEase;
  model.auto_select = cmd.algorithm.empty();
  if (cmd.select_budget <= 0) return absl::InvalidArgumentError("--select-budget must be > 0");
  model.select_budget_seconds = cmd.select_budget;
  model.rating_head = cmd.algorithm.empty() && !cmd.no_rating_head;
  if (cmd.k < 1) return absl::InvalidArgumentError("--k must be >= 1");
  ASSIGN_OR_RETURN(run.read, MakeReadOptions(cmd.input, model.feedback));
  if (cmd.data.empty() == cmd.events.empty()) {
    return absl::InvalidArgumentError("give exactly one of --data and --events");
  }
  run.data = cmd.data;
  run.events = cmd.events;
  run.test = cmd.test;
  run.split = cmd.split;
  run.k = cmd.k;
  run.out = cmd.out;
  run.index = cmd.index_options;
  if (!run.out.empty()) {
    ASSIGN_OR_RETURN(run.index.type, ParseIndexType(cmd.index));
  }
  return run;
}

void PrintJson(const TrainRun& run, const std::string& algorithm, const TrainReport& report) {
  nlohmann::json out = report.eval->ToJson();
  out["algorithm"] = algorithm;
  if (report.bpmf) out["bpmf_rmse_all_samples"] = report.bpmf->probe_rmse_all_samples;
  out["feedback"] = std::string(ToString(run.model.feedback));  // of the data
  // Of the model served: implicit for the ranking model fitted on ratings.
  out["model_feedback"] = std::string(ToString(report.model.params.feedback));
  out["train_seconds"] = report.train_seconds;
  out["baseline"] = report.baseline->ToJson();
  if (report.rating_head && report.rating_head->rmse) {
    out["rating_head"] = {{"algorithm", "bpmf"},
                          {"rmse", *report.rating_head->rmse},
                          {"mae", report.rating_head->mae.value_or(0.0)}};
  }
  if (report.saved) {
    out["model_version"] = report.saved->version;
    out["model_path"] = report.saved->path;
  }
  std::cout << out.dump() << std::endl;
}

int RunTrain(const TrainCommand& cmd) {
  if (cmd.distributed) return RunDistributedTrain(cmd);
  CliLogger log(cmd.quiet);
  const absl::StatusOr<TrainRun> run = cmd.base.empty() ? RunOf(cmd, &log) : RetrainRunOf(cmd);
  if (!run.ok()) return Fail(run.status());
  const absl::StatusOr<TrainReport> report = RunTraining(*run, &log);
  if (!report.ok()) return Fail(report.status());
  if (report->gate) return report->gate->passed ? 0 : 3;  // the gate refused: exit code 3
  if (!report->eval) {
    log.Info("no --test or --split: no held-out metrics");
    return 0;
  }
  const std::string algorithm(ToString(report->model.params.algorithm));
  if (cmd.json) {
    PrintJson(*run, algorithm, *report);
  } else {
    PrintTable(algorithm, *report->eval, *report->baseline);
    if (report->rating_head && report->rating_head->rmse) {
      std::printf("rating head (bpmf): rmse %.4f  mae %.4f\n", *report->rating_head->rmse,
                  report->rating_head->mae.value_or(0.0));
    }
  }
  return 0;
}

// The model's hyper-parameters; returns --factors, which bpmf takes too when it is given.
CLI::Option* AddModelFlags(CLI::App* sub, TrainCommand* cmd) {
  sub->add_option("--algorithm", cmd->algorithm,
                  "als, bpmf, ease or popular (default: the ranking model, implicit als; on "
                  "ratings, fitted on the ratings as liked/disliked preferences)");
  sub->add_option("--feedback", cmd->feedback,
                  "explicit (ratings), implicit (counts, hours, events) or auto (guessed from "
                  "the values: ratings are a 0-10 scale of half steps whose most common value "
                  "is not its lowest)")
      ->capture_default_str();
  CLI::Option* factors =
      sub->add_option("--factors", cmd->als.factors,
                      "Latent factors K (default: 64 for als; 10 per sample for bpmf)");
  sub->add_option("--burn-in", cmd->bpmf.burn_in, "bpmf: Gibbs sweeps discarded first")
      ->capture_default_str();
  sub->add_option("--samples", cmd->bpmf.samples,
                  "bpmf: Gibbs sweeps after the burn-in, averaged into the prediction")
      ->capture_default_str();
  sub->add_option("--served-samples", cmd->bpmf.served_samples,
                  "bpmf: samples (evenly spaced) side by side in the served vectors, which "
                  "have factors x served-samples entries")
      ->capture_default_str();
  sub->add_option("--user-noise-dof", cmd->bpmf.user_noise_dof,
                  "bpmf: degrees of freedom of each user's Student-t rating noise (erratic "
                  "raters weigh less); 0 = Gaussian")
      ->capture_default_str();
  sub->add_option("--item-noise-dof", cmd->bpmf.item_noise_dof,
                  "bpmf: the same per item; 0 = Gaussian")
      ->capture_default_str();
  sub->add_option("--noise-precision", cmd->bpmf.noise_precision,
                  "bpmf: fixed precision of the rating noise; 0 = sampled")
      ->capture_default_str();
  sub->add_option("--iterations", cmd->als.iterations, "ALS iterations")->capture_default_str();
  sub->add_option("--regularization", cmd->als.regularization,
                  "Lambda (default: 0.12 explicit, weighted by ratings per row; 100 implicit)");
  sub->add_option("--bias-regularization", cmd->als.bias_regularization,
                  "Explicit: lambda of the biases (weighted by ratings per row)")
      ->capture_default_str();
  sub->add_option("--alpha", cmd->als.alpha,
                  "Implicit: confidence 1 + alpha * w(value), w as --confidence")
      ->capture_default_str();
  sub->add_flag("--no-rating-head", cmd->no_rating_head,
                "Without --algorithm on ratings: skip the rating head (bpmf, saved beside the "
                "ranking model for predicted ratings), which costs a bpmf fit");
  sub->add_option("--select-budget", cmd->select_budget,
                  "Without --algorithm: seconds the choice of the ranking model may take on its "
                  "validation split (cheapest candidates first; the rest are skipped)")
      ->capture_default_str();
  sub->add_option("--ease-regularization", cmd->ease.regularization,
                  "ease: lambda of (X'X + lambda I)^-1")
      ->capture_default_str();
  sub->add_option("--ease-max-items", cmd->ease.max_items,
                  "ease: the most items it trains on (memory: about 8 x items^2 bytes)")
      ->capture_default_str();
  sub->add_option("--confidence", cmd->confidence,
                  "Implicit: the weight w of a value: log (log(1 + value), for heavy-tailed "
                  "counts) or linear (the value)")
      ->capture_default_str();
  sub->add_option("--cg-steps", cmd->als.cg_steps, "Implicit: conjugate-gradient steps per row")
      ->capture_default_str();
  sub->add_flag("--cholesky", cmd->als.cholesky,
                "Implicit: exact Cholesky solve per row instead of CG");
  sub->add_option("--seed", cmd->als.seed, "Random seed (initial factors, splits)")
      ->capture_default_str();
  sub->add_option("--popularity-half-life", cmd->popularity.half_life_days,
                  "Days after which an interaction counts half in the popular items (cold "
                  "start); 0 = plain counts. Needs timestamps in --data")
      ->capture_default_str();
  return factors;
}

}  // namespace

Subcommand AddTrainCommand(CLI::App* app) {
  auto cmd = std::make_shared<TrainCommand>();
  CLI::App* sub = app->add_subcommand(
      "train", "Train a model on a ratings/events file and print its held-out metrics");
  sub->fallthrough();  // --config (a root option, see serve) after `train`: [train] table
  auto* data_opt = sub->add_option("--data", cmd->data, "Training file (ratings or events)");
  sub->add_option("--events", cmd->events,
                  "Or an event store (recloop serve --events): trains on all its events")
      ->excludes(data_opt);
  sub->add_option("--base", cmd->base,
                  "With --events: retrain as the server does from this models directory's "
                  "current model (carried forward, warm-started, gated; --iterations "
                  "warm iterations)");
  auto* test_opt = sub->add_option("--test", cmd->test, "Held-out test file");
  sub->add_option("--split", cmd->split,
                  "Split --data instead: random:F, user:F, user-last:N or time:F")
      ->excludes(test_opt);
  AddInputFlags(sub, &cmd->input);
  CLI::Option* factors = AddModelFlags(sub, cmd.get());
  sub->add_option("--k", cmd->k, "Cut-off of the ranking metrics")->capture_default_str();
  sub->add_flag("--json", cmd->json, "Print the metrics as one JSON object (last line)");
  sub->add_flag("--quiet", cmd->quiet, "No progress lines on stderr");
  sub->add_option(
         "--index", cmd->index,
         "Item index saved with the model: auto (exact below 20K items; above, HNSW with the "
         "smallest efSearch reaching recall@10 0.97 against exact search on a sample "
         "of users, else exact), exact, hnsw")
      ->capture_default_str();
  sub->add_option("--hnsw-m", cmd->index_options.hnsw_m,
                  "HNSW graph degree M (memory ~ 8 M bytes per item; higher recalls more)")
      ->capture_default_str()
      ->check(CLI::Range(2, 256));
  sub->add_option("--hnsw-ef-construction", cmd->index_options.hnsw_ef_construction,
                  "HNSW beam width while building (higher builds slower, a better graph)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--hnsw-ef-search", cmd->index_options.hnsw_ef_search,
                  "HNSW default beam width of queries, saved with the index (higher is "
                  "slower and recalls more); --index auto calibrates its own")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  sub->add_flag("--distributed", cmd->distributed,
                "Train als across the processes of an MPI job: mpirun -np P recloop train "
                "--distributed ... (each process reads a byte range of --data and --test)");
  sub->add_option("--exchange", cmd->exchange,
                  "--distributed: block (send each process only the factor rows its rows "
                  "need) or allgather (every process gets them all: the baseline)")
      ->capture_default_str();
  sub->add_option("--out", cmd->out,
                  "Models directory: the model is written as a new version MODELS/vNNNNNN "
                  "and MODELS/current is pointed at it");

  return {sub, [cmd, factors] {
            if (factors->count() > 0) cmd->bpmf.factors = cmd->als.factors;
            cmd->bpmf.seed = cmd->als.seed;
            return RunTrain(*cmd);
          }};
}

}  // namespace recloop
