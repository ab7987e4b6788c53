// recloop: train, evaluate, inspect models and generate data from the command line. A thin shell: every flag is
// parsed here into an options struct and handed to tools/commands.cc.
#include <iostream>
#include <memory>

#include "CLI/CLI.hpp"
#include "tbb/global_control.h"
#include "tools/commands.h"
#include "tools/tune.h"

namespace {

void AddInputFlags(CLI::App* app, recloop::InputFlags* f) {
  app->add_option("--format", f->format, "Input format: auto, ml100k, dat, csv, tsv")
      ->capture_default_str();
  app->add_flag("--skip-bad-rows", f->skip_bad_rows,
                "Skip malformed rows (and report how many) instead of stopping at the first");
  app->add_option("--duplicates", f->duplicates,
                  "Repeated (user, item) pairs: last, sum or error (default: last for explicit "
                  "feedback, sum for implicit)");
}

void AddGeneratorFlags(CLI::App* app, recloop::GeneratorOptions* g) {
  app->add_option("--users", g->users, "Number of users")->capture_default_str();
  app->add_option("--items", g->items, "Number of items")->capture_default_str();
  app->add_option("--interactions", g->interactions, "Number of interactions")
      ->capture_default_str();
  app->add_option("--clusters", g->clusters, "Planted taste clusters")->capture_default_str();
  app->add_option("--rank", g->rank, "Rank of the planted taste structure")
      ->capture_default_str();
  app->add_option("--zipf", g->zipf_exponent, "Exponent of the power-law item popularity")
      ->capture_default_str();
  app->add_option("--in-cluster", g->in_cluster,
                  "Probability that an interaction comes from the user's cluster")
      ->capture_default_str();
  app->add_option("--seed", g->seed, "Random seed")->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"recloop: a personalised recommendation engine (training, evaluation, data)"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);

  recloop::GenerateCommand gen;
  auto* generate = app.add_subcommand(
      "generate", "Write a synthetic store (power-law popularity, planted taste clusters) as CSV");
  AddGeneratorFlags(generate, &gen.generator);
  generate->add_option("--feedback", gen.feedback, "explicit (ratings 1-5) or implicit (counts)")
      ->capture_default_str();
  generate->add_option("--out", gen.out, "Output CSV file")->required();

  recloop::TrainCommand train;
  auto* train_cmd = app.add_subcommand(
      "train", "Train a model on a ratings/events file and print its held-out metrics");
  train_cmd->fallthrough();  // --config (a root option, see serve) after `train`: [train] table
  auto* data_opt =
      train_cmd->add_option("--data", train.data, "Training file (ratings or events)");
  train_cmd->add_option("--events", train.events,
                        "Or an event store (recloop serve --events): trains on all its events")
      ->excludes(data_opt);
  train_cmd->add_option("--base", train.base,
                        "With --events: retrain as the server does from this models directory's "
                        "current model (carried forward, warm-started, gated; --iterations "
                        "warm iterations)");
  auto* test_opt = train_cmd->add_option("--test", train.test, "Held-out test file");
  train_cmd->add_option("--split", train.split,
                        "Split --data instead: random:F, user:F, user-last:N or time:F")
      ->excludes(test_opt);
  AddInputFlags(train_cmd, &train.input);
  train_cmd->add_option("--algorithm", train.algorithm,
                        "als, bpmf or popular (default: bpmf for explicit feedback, als for "
                        "implicit)");
  train_cmd->add_option("--feedback", train.feedback, "explicit (ratings) or implicit (events)")
      ->capture_default_str();
  auto* factors_opt = train_cmd->add_option(
      "--factors", train.als.factors,
      "Latent factors K (default: 64 for als; 10 per sample for bpmf)");
  train_cmd->add_option("--burn-in", train.bpmf.burn_in, "bpmf: Gibbs sweeps discarded first")
      ->capture_default_str();
  train_cmd->add_option("--samples", train.bpmf.samples,
                        "bpmf: Gibbs sweeps after the burn-in, averaged into the prediction")
      ->capture_default_str();
  train_cmd->add_option("--served-samples", train.bpmf.served_samples,
                        "bpmf: samples (evenly spaced) side by side in the served vectors, which "
                        "have factors x served-samples entries")
      ->capture_default_str();
  train_cmd->add_option("--user-noise-dof", train.bpmf.user_noise_dof,
                        "bpmf: degrees of freedom of each user's Student-t rating noise (erratic "
                        "raters weigh less); 0 = Gaussian")
      ->capture_default_str();
  train_cmd->add_option("--item-noise-dof", train.bpmf.item_noise_dof,
                        "bpmf: the same per item; 0 = Gaussian")
      ->capture_default_str();
  train_cmd->add_option("--noise-precision", train.bpmf.noise_precision,
                        "bpmf: fixed precision of the rating noise; 0 = sampled")
      ->capture_default_str();
  train_cmd->add_option("--iterations", train.als.iterations, "ALS iterations")
      ->capture_default_str();
  train_cmd->add_option("--regularization", train.als.regularization,
                        "Lambda (default: 0.12 explicit, weighted by ratings per row; 20 implicit)");
  train_cmd->add_option("--bias-regularization", train.als.bias_regularization,
                        "Explicit: lambda of the biases (weighted by ratings per row)")
      ->capture_default_str();
  train_cmd->add_option("--alpha", train.als.alpha, "Implicit: confidence 1 + alpha * value")
      ->capture_default_str();
  train_cmd->add_option("--cg-steps", train.als.cg_steps,
                        "Implicit: conjugate-gradient steps per row")
      ->capture_default_str();
  train_cmd->add_flag("--cholesky", train.als.cholesky,
                      "Implicit: exact Cholesky solve per row instead of CG");
  train_cmd->add_option("--seed", train.als.seed, "Random seed (initial factors, splits)")
      ->capture_default_str();
  train_cmd->add_option("--popularity-half-life", train.popularity.half_life_days,
                        "Days after which an interaction counts half in the popular items (cold "
                        "start); 0 = plain counts. Needs timestamps in --data")
      ->capture_default_str();
  train_cmd->add_option("--k", train.k, "Cut-off of the ranking metrics")->capture_default_str();
  train_cmd->add_flag("--json", train.json, "Print the metrics as one JSON object (last line)");
  train_cmd->add_flag("--quiet", train.quiet, "No progress lines on stderr");
  train_cmd->add_option("--index", train.index,
                        "Item index saved with the model: auto (HNSW from 200K items), exact, hnsw")
      ->capture_default_str();
  train_cmd->add_option("--hnsw-m", train.index_options.hnsw_m,
                        "HNSW graph degree M (memory ~ 8 M bytes per item; higher recalls more)")
      ->capture_default_str()
      ->check(CLI::Range(2, 256));
  train_cmd->add_option("--hnsw-ef-construction", train.index_options.hnsw_ef_construction,
                        "HNSW beam width while building (higher builds slower, a better graph)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  train_cmd->add_option("--hnsw-ef-search", train.index_options.hnsw_ef_search,
                        "HNSW default beam width of queries, saved with the index (higher is "
                        "slower and recalls more)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  train_cmd->add_flag("--distributed", train.distributed,
                      "Train als across the processes of an MPI job: mpirun -np P recloop train "
                      "--distributed ... (each process reads a byte range of --data and --test)");
  train_cmd->add_option("--exchange", train.exchange,
                        "--distributed: block (send each process only the factor rows its rows "
                        "need) or allgather (every process gets them all: the baseline)")
      ->capture_default_str();
  train_cmd->add_option("--out", train.out,
                        "Models directory: the model is written as a new version MODELS/vNNNNNN "
                        "and MODELS/current is pointed at it");

  recloop::TuneCommand tune;
  auto* tune_cmd = app.add_subcommand(
      "tune", "Search hyper-parameters on a validation split of --data; write the best as a "
              "`train --config` file");
  tune_cmd->fallthrough();  // --threads after `tune` too
  tune_cmd->add_option("--data", tune.data, "Training file; validation is split off it")
      ->required();
  tune_cmd->add_option("--split", tune.split,
                       "How validation is split off --data: random:F, user:F, user-last:N or "
                       "time:F")
      ->capture_default_str();
  tune_cmd->add_option("--test", tune.test,
                       "After the search, retrain the best configuration and the defaults on all "
                       "of --data and report both on this file (never used to choose)");
  AddInputFlags(tune_cmd, &tune.input);
  tune_cmd->add_option("--algorithm", tune.algorithm,
                       "als, bpmf or popular (default: as train, bpmf for explicit feedback, als "
                       "for implicit)");
  tune_cmd->add_option("--feedback", tune.feedback, "explicit (ratings) or implicit (events)")
      ->capture_default_str();
  tune_cmd->add_option("--metric", tune.metric,
                       "Ranks the trials: rmse, mae (lower is better), auc, or ndcg@K, recall@K, "
                       "map@K, precision@K, hit_rate@K (default: rmse explicit, ndcg@10 "
                       "implicit)");
  tune_cmd->add_option("--trials", tune.trials, "Trials, the first being the defaults")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  tune_cmd->add_option("--search", tune.search, "random or grid")->capture_default_str();
  tune_cmd->add_option("--space", tune.space,
                       "JSON search space, e.g. {\"factors\": {\"values\": [32, 64]}, "
                       "\"regularization\": {\"min\": 0.02, \"max\": 0.5, \"log\": true}} "
                       "(default: per algorithm)");
  tune_cmd->add_option("--seed", tune.seed, "Seed of the split, the sampling and the trials")
      ->capture_default_str();
  tune_cmd->add_option("--out", tune.out, "The best configuration, a TOML [train] table")
      ->capture_default_str();
  tune_cmd->add_flag("--quiet", tune.quiet, "No progress bar on stderr");

  recloop::EvalCommand eval;
  auto* eval_cmd = app.add_subcommand("eval", "Evaluate a saved model on a held-out file");
  eval_cmd->add_option("--model", eval.model,
                       "Models directory (uses its current version) or one version directory")
      ->required();
  eval_cmd->add_option("--test", eval.test, "Held-out test file")->required();
  AddInputFlags(eval_cmd, &eval.input);
  eval_cmd->add_option("--k", eval.k, "Cut-off of the ranking metrics")->capture_default_str();
  eval_cmd->add_flag("--json", eval.json, "Print the metrics as one JSON object");

  recloop::ModelInfoCommand info;
  recloop::EventsExportCommand events_export;
  auto* events_cmd = app.add_subcommand("events", "Work with an event store");
  events_cmd->require_subcommand(1);
  auto* export_cmd = events_cmd->add_subcommand(
      "export", "Write every event as CSV (user,item,type,value,timestamp), the file train reads");
  export_cmd->add_option("--store", events_export.store, "The event store")->required();
  export_cmd->add_option("--out", events_export.out, "Output CSV file")->required();

  recloop::CatalogCommand catalog;
  auto* catalog_cmd = app.add_subcommand(
      "catalog", "Load item titles and categories into a models directory's catalogue");
  auto* catalog_models = catalog_cmd->add_option(
      "--models", catalog.models, "Models directory: its catalogue MODELS/catalog.db");
  catalog_cmd->add_option("--catalog", catalog.catalog, "Or this catalogue file (serve --catalog)")
      ->excludes(catalog_models);
  catalog_cmd->add_option("--movielens-items", catalog.movielens_items,
                          "MovieLens 100K u.item: titles, and genres as categories")
      ->required();

  auto* model_cmd = app.add_subcommand("model", "Inspect saved models");
  model_cmd->require_subcommand(1);
  auto* info_cmd = model_cmd->add_subcommand(
      "info", "Print a model's metadata: lineage, hyper-parameters, shapes, checksums");
  info_cmd->add_option("DIR", info.model,
                       "Models directory (uses its current version) or one version directory")
      ->required();
  info_cmd->add_flag("--json", info.json, "Print the metadata as JSON");

  recloop::DemoCommand demo;
  demo.generator.users = 5000;
  demo.generator.items = 1000;
  demo.generator.interactions = 150000;
  demo.generator.feedback = recloop::Feedback::kImplicit;
  auto* demo_cmd = app.add_subcommand(
      "demo", "Generate a store, train on it, print metrics and a few recommendations");
  AddGeneratorFlags(demo_cmd, &demo.generator);
  demo_cmd->add_flag("--quiet", demo.quiet, "No progress lines on stderr");
  demo_cmd->add_option("--models", demo.models,
                       "Save the model (and a catalogue of the planted clusters) in this models "
                       "directory and print curl lines to try");
  demo_cmd->add_flag("--serve", demo.serve, "Then serve it (needs --models)")->needs("--models");
  demo_cmd->add_option("--host", demo.host, "--serve: address to listen on")->capture_default_str();
  demo_cmd->add_option("--port", demo.port, "--serve: TCP port")->capture_default_str();

  recloop::RecommendCommand recommend;
  auto* recommend_cmd = app.add_subcommand(
      "recommend", "Top-n recommendations for one user, or for every user into a CSV file");
  recommend_cmd->add_option("--model", recommend.model,
                            "Models directory (its current version) or one version directory")
      ->required();
  recommend_cmd->add_option("--user", recommend.user, "External user ID (unknown: popular items)");
  recommend_cmd->add_flag("--all", recommend.all, "Every user of the model (with --out)");
  recommend_cmd->add_option("--n", recommend.n, "Items per user")->capture_default_str();
  recommend_cmd->add_flag("--json", recommend.json, "One JSON object, as the server returns it");
  recommend_cmd->add_option("--out", recommend.out, "--all: CSV file user,rank,item,score");

  recloop::SimilarCommand similar;
  auto* similar_cmd =
      app.add_subcommand("similar", "Items most similar to an item (cosine of item embeddings)");
  similar_cmd->add_option("--model", similar.model,
                          "Models directory (its current version) or one version directory")
      ->required();
  similar_cmd->add_option("--item", similar.item, "External item ID")->required();
  similar_cmd->add_option("--n", similar.n, "Number of items")->capture_default_str();
  similar_cmd->add_flag("--json", similar.json, "One JSON object");

  recloop::ServeCommand serve;
  auto* serve_cmd = app.add_subcommand(
      "serve", "Serve recommendations over HTTP from a models directory's current version");
  // CLI11 reads config files at the top level: `--config` belongs to the root app and falls
  // through from `serve` and `train`; the file's keys sit under a [serve] or [train] table.
  // Command-line flags win.
  app.set_config("--config", "",
                 "serve, train: TOML config file, keys as the long flags without dashes under "
                 "[serve] or [train] (e.g. [serve] port = 9000; `recloop tune` writes a [train] "
                 "file); flags on the command line win");
  serve_cmd->fallthrough();
  recloop::ServeOptions& so = serve.serve;
  serve_cmd->add_option("--models", so.model.models_dir,
                        "Models directory written by `recloop train --out`")
      ->required();
  serve_cmd->add_option("--catalog", so.model.catalog_path,
                        "SQLite file of the item catalogue (default MODELS/catalog.db)");
  serve_cmd->add_option("--host", so.http.host, "Address to listen on")->capture_default_str();
  serve_cmd->add_option("--port", so.http.port, "TCP port (0: any free port)")
      ->capture_default_str();
  serve_cmd->add_option("--io-threads", so.http.threads, "I/O threads (0: one per core)")
      ->capture_default_str();
  serve_cmd->add_option("--max-header-bytes", so.http.max_header_bytes,
                        "Largest request header (larger: 431)")
      ->capture_default_str();
  serve_cmd->add_option("--max-body-bytes", so.http.max_body_bytes,
                        "Largest request body (larger: 413)")
      ->capture_default_str();
  serve_cmd->add_option("--max-connections", so.http.max_connections,
                        "Open connections at most (more: 503)")
      ->capture_default_str();
  serve_cmd->add_option("--idle-timeout-ms", serve.idle_timeout_ms,
                        "Close a keep-alive connection idle this long")
      ->capture_default_str();
  serve_cmd->add_option("--read-timeout-ms", serve.read_timeout_ms,
                        "A started request must arrive whole within this (slow clients are cut)")
      ->capture_default_str();
  serve_cmd->add_option("--drain-timeout-ms", serve.drain_timeout_ms,
                        "On SIGTERM/SIGINT, time for requests in flight to finish")
      ->capture_default_str();
  serve_cmd->add_option("--rate-limit", so.http.max_requests_per_second_per_connection,
                        "Requests per second per connection (more: 429); 0 = unlimited")
      ->capture_default_str();
  serve_cmd->add_option("--default-n", so.api.default_n, "Results when a request gives no n")
      ->capture_default_str();
  serve_cmd->add_option("--max-n", so.api.max_n, "Largest n a request may ask for")
      ->capture_default_str();
  serve_cmd->add_option("--events", so.events_path,
                        "Event store of POST /v1/feedback (SQLite, created when missing); without "
                        "it the feedback routes answer 404");
  recloop::RetrainerOptions& ro = so.retrain;
  serve_cmd->add_option("--retrain-events", ro.every_events,
                        "Retrain in the background after this many new events (0: not by count)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--retrain-minutes", ro.every_minutes,
                        "Or this many minutes after the last retrain, if there are new events "
                        "(0: not by time)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--retrain-iterations", ro.iterations,
                        "ALS iterations of a retrain (warm-started from the live model)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  serve_cmd->add_option("--retrain-threads", ro.threads,
                        "Threads of a retrain (it runs at nice 19 beside serving)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  serve_cmd->add_option("--retrain-regularization", ro.regularization,
                        "Regularisation of retrained models (negative: the live model's)")
      ->capture_default_str();
  serve_cmd->add_option("--holdout-fraction", ro.gate.holdout_fraction,
                        "Newest share of the new events held out to gate a retrained model")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  serve_cmd->add_option("--gate-tolerance", ro.gate.tolerance,
                        "Promote a retrained model unless it is worse than the live one on the "
                        "holdout by more than this fraction (RMSE, or NDCG@10 for implicit)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  serve_cmd->add_option("--new-item-min-events", ro.new_item_min_events,
                        "A new item with this many events from known customers is folded in and "
                        "indexed before the next retrain (0: wait for the retrain)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--keep-versions", ro.keep_versions,
                        "Model versions kept in the models directory (older ones are removed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  serve_cmd->add_option("--ef-search", so.api.ef_search,
                        "HNSW beam width of queries (lower: faster, recalls less); 0 = the one "
                        "saved with the index")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  serve_cmd->add_option("--api-key-file", serve.api_key_file,
                        "File whose first line is the API key that write routes require "
                        "(else $RECLOOP_API_KEY; neither: no authentication)");
  serve_cmd->add_flag("--auth-reads", so.api.auth_reads,
                      "Require the API key on read routes too (not /healthz, /readyz)");
  serve_cmd->add_option("--access-log-every", so.access_log_every,
                        "Log every N-th request to stderr (0: no access log)")
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<tbb::global_control> limit;
  if (threads > 0) {
    limit = std::make_unique<tbb::global_control>(
        tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  }
  if (*generate) return recloop::RunGenerate(gen);
  if (*train_cmd) {
    if (factors_opt->count() > 0) train.bpmf.factors = train.als.factors;
    train.bpmf.seed = train.als.seed;
    return recloop::RunTrain(train);
  }
  if (*tune_cmd) return recloop::RunTune(tune);
  if (*eval_cmd) return recloop::RunEval(eval);
  if (*info_cmd) return recloop::RunModelInfo(info);
  if (*demo_cmd) return recloop::RunDemo(demo);
  if (*export_cmd) return recloop::RunEventsExport(events_export);
  if (*catalog_cmd) {
    if (catalog.models.empty() && catalog.catalog.empty()) {
      std::fprintf(stderr, "recloop catalog: give --models DIR or --catalog FILE\n");
      return 2;
    }
    return recloop::RunCatalog(catalog);
  }
  if (*recommend_cmd) return recloop::RunRecommend(recommend);
  if (*similar_cmd) return recloop::RunSimilar(similar);
  if (*serve_cmd) return recloop::RunServeCommand(std::move(serve));
  return 2;
}
