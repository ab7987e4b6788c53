// Per-iteration cost of explicit and implicit ALS on generated stores of the MovieLens-20M shape
// (138K users x 27K items) with 10M and 20M interactions, at K = 64 and 128.
//
//   build/bench/als_bench --benchmark_filter=Implicit  (see BENCHMARKS.md, bench/run_training.sh)
//
// GFLOP/s counts the arithmetic of the algorithm, not of our implementation:
//   explicit: per half-step Σ_rows [n_r (K+1)² + (K+1)³/3]  (Gram of the row's design matrix,
//             counted as nK² multiply-adds = 2 flop each over the symmetric half, and Cholesky)
//   implicit CG: per half-step (steps + 1) · (4 K nnz + 2 K² rows)
#include <map>
#include <memory>

#include "benchmark/benchmark.h"
#include "data/generator.h"
#include "training/als.h"

namespace recloop {
namespace {

constexpr int32_t kUsers = 138000;
constexpr int32_t kItems = 27000;

struct Matrices {
  CsrMatrix by_user;
  CsrMatrix by_item;
};

// Generated once per (size, feedback) and kept for the whole run: setup is never timed.
const Matrices& Store(int64_t interactions, Feedback feedback) {
  static std::map<std::pair<int64_t, Feedback>, std::unique_ptr<Matrices>> cache;
  auto& slot = cache[{interactions, feedback}];
  if (!slot) {
    cache.clear();  // one store in memory at a time
    auto& fresh = cache[{interactions, feedback}];
    GeneratorOptions g;
    g.users = kUsers;
    g.items = kItems;
    g.interactions = interactions;
    g.clusters = 20;
    g.feedback = feedback;
    auto store = GenerateStore(g);
    if (!store.ok()) std::abort();
    fresh = std::make_unique<Matrices>();
    fresh->by_user = store->data.ToUserItemMatrix();
    fresh->by_item = fresh->by_user.Transpose();
    return *fresh;
  }
  return *slot;
}

double ExplicitFlops(const Matrices& m, int k) {
  const double k1 = k + 1;
  const double nnz = static_cast<double>(m.by_user.nnz());
  const double rows = m.by_user.rows() + m.by_item.rows();
  return 2 * nnz * k1 * k1 + rows * k1 * k1 * k1 / 3;
}

double ImplicitFlops(const Matrices& m, int k, int steps) {
  const double nnz = static_cast<double>(m.by_user.nnz());
  const double rows = m.by_user.rows() + m.by_item.rows();
  return (steps + 1) * (4.0 * k * 2 * nnz + 2.0 * k * k * rows);
}

void RunIterations(benchmark::State& state, Feedback feedback, bool cholesky = false) {
  const int64_t interactions = state.range(0) * 1000000;
  const int k = static_cast<int>(state.range(1));
  const Matrices& m = Store(interactions, feedback);
  AlsOptions o;
  o.feedback = feedback;
  o.factors = k;
  o.cholesky = cholesky;
  auto trainer = AlsTrainer::Create(m.by_user, m.by_item, o);
  if (!trainer.ok()) {
    state.SkipWithError(std::string(trainer.status().message()).c_str());
    return;
  }
  // One untimed iteration, so that the timed ones start from trained (warm) factors, as every
  // iteration after the first does in a real run.
  if (!trainer->Iterate().ok()) std::abort();
  for (auto _ : state) {
    if (!trainer->Iterate().ok()) std::abort();
  }
  // The exact implicit solve does the explicit solver's arithmetic (a Gram per row + Cholesky).
  const double flops = feedback == Feedback::kExplicit || cholesky
                           ? ExplicitFlops(m, k - 1)
                           : ImplicitFlops(m, k, o.cg_steps);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["nnz"] = static_cast<double>(m.by_user.nnz());
}

void BM_ExplicitAlsIteration(benchmark::State& state) {
  RunIterations(state, Feedback::kExplicit);
}
void BM_ImplicitAlsIteration(benchmark::State& state) {
  RunIterations(state, Feedback::kImplicit);
}

// The in-run baseline for the CG solver: the same iteration solved exactly per row.
void BM_ImplicitAlsIterationCholesky(benchmark::State& state) {
  RunIterations(state, Feedback::kImplicit, /*cholesky=*/true);
}

// Args: {interactions in millions, K}. Each repetition times one iteration after an untimed
// warm-up iteration; the report gives the median of three repetitions.
#define RECLOOP_ALS_SIZES(b)            \
  b->ArgNames({"Minteractions", "K"})   \
      ->Args({10, 64})                  \
      ->Args({10, 128})                 \
      ->Args({20, 64})                  \
      ->Args({20, 128})                 \
      ->Unit(benchmark::kSecond)        \
      ->Iterations(1)                   \
      ->Repetitions(3)                  \
      ->ReportAggregatesOnly(true)      \
      ->UseRealTime()
RECLOOP_ALS_SIZES(BENCHMARK(BM_ImplicitAlsIteration));
RECLOOP_ALS_SIZES(BENCHMARK(BM_ExplicitAlsIteration));
BENCHMARK(BM_ImplicitAlsIterationCholesky)
    ->ArgNames({"Minteractions", "K"})
    ->Args({10, 64})
    ->Unit(benchmark::kSecond)
    ->Iterations(1)
    ->Repetitions(3)
    ->ReportAggregatesOnly(true)
    ->UseRealTime();

}  // namespace
}  // namespace recloop

BENCHMARK_MAIN();
