// Per-iteration cost of explicit and implicit ALS, and per-sweep cost of BPMF, on generated stores of the MovieLens-20M shape
// (138K users x 27K items) with 10M and 20M interactions, at K = 64 and 128.
//
//   build/bench/als_bench --benchmark_filter=Implicit  (see BENCHMARKS.md, bench/run_training.sh)
//   build/bench/als_bench --sizes=1,5,20 --factors=64 --repetitions=3 --baseline_size=5
//       (bench/run-all: other sizes in millions of interactions, factor counts, repetitions and
//       the size of the exact-solve baseline, 0 = none; the defaults are the first line's)
//
// GFLOP/s counts the arithmetic of the algorithm, not of our implementation:
//   explicit: per half-step Σ_rows [n_r (K+1)² + (K+1)³/3]  (Gram of the row's design matrix,
//             counted as nK² multiply-adds = 2 flop each over the symmetric half, and Cholesky)
//   implicit CG: per half-step (steps + 1) · (4 K nnz + 2 K² rows)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "data/generator.h"
#include "training/als.h"
#include "training/bpmf.h"

namespace recloop {
namespace {

constexpr int32_t kUsers = 138000;
constexpr int32_t kItems = 27000;

struct Matrices {
  CsrMatrix by_user;
  CsrMatrix by_item;
};

// Generated once per (size, feedback) and kept for the whole run: setup is never timed.
const Matrices& Store(int64_t interactions, FeedbackKind feedback) {
  static std::map<std::pair<int64_t, FeedbackKind>, std::unique_ptr<Matrices>> cache;
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

void RunIterations(benchmark::State& state, FeedbackKind feedback, bool cholesky = false) {
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
  const double flops = feedback == FeedbackKind::kExplicit || cholesky
                           ? ExplicitFlops(m, k - 1)
                           : ImplicitFlops(m, k, o.cg_steps);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["nnz"] = static_cast<double>(m.by_user.nnz());
}

void BM_ExplicitAlsIteration(benchmark::State& state) {
  RunIterations(state, FeedbackKind::kExplicit);
}
void BM_ImplicitAlsIteration(benchmark::State& state) {
  RunIterations(state, FeedbackKind::kImplicit);
}

// The in-run baseline for the CG solver: the same iteration solved exactly per row.
void BM_ImplicitAlsIterationCholesky(benchmark::State& state) {
  RunIterations(state, FeedbackKind::kImplicit, /*cholesky=*/true);
}

// One BPMF Gibbs sweep (hyper-parameters, every user, every item, the noise) on explicit
// ratings: a short chain of 1 + 3 sweeps, timed per sweep through the callback; the reported
// time is the median of the three sweeps after the first (manual time). The explicit ALS
// iteration at the same (size, K) is the in-run baseline: a sweep does the same per-row
// Cholesky, plus drawing the noise, the hyper-parameters and the residuals.
void BM_BpmfSweep(benchmark::State& state) {
  const int64_t interactions = state.range(0) * 1000000;
  const Matrices& m = Store(interactions, FeedbackKind::kExplicit);
  BpmfOptions o;
  o.factors = static_cast<int>(state.range(1));
  o.burn_in = 1;
  o.samples = 3;
  o.served_samples = 1;
  for (auto _ : state) {
    std::vector<double> seconds;
    auto model = TrainBpmf(m.by_user, m.by_item, o, {[&](const BpmfSweepStats& s) {
                             if (s.sweep > 1) seconds.push_back(s.seconds);
                           }});
    if (!model.ok()) {
      state.SkipWithError(std::string(model.status().message()).c_str());
      return;
    }
    std::sort(seconds.begin(), seconds.end());
    state.SetIterationTime(seconds[seconds.size() / 2]);
  }
  state.counters["GFLOP/s"] = benchmark::Counter(ExplicitFlops(m, o.factors) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["nnz"] = static_cast<double>(m.by_user.nnz());
}

// What is measured: every (size, K) pair, in that order, for both models, and the exact-solve
// baseline at (baseline_size, the first K). Each repetition times one iteration after an
// untimed warm-up iteration; the report gives the median of the repetitions.
struct Sweep {
  std::vector<int64_t> sizes = {10, 20};   // millions of interactions
  std::vector<int64_t> factors = {64, 128};
  int repetitions = 3;
  int64_t baseline_size = 10;  // 0 = no baseline
};

void Configure(benchmark::internal::Benchmark* b, const Sweep& sweep,
               const std::vector<int64_t>& sizes, bool manual_time = false) {
  b->ArgNames({"Minteractions", "K"});
  for (const int64_t size : sizes) {
    for (const int64_t k : sweep.factors) b->Args({size, k});
  }
  b->Unit(benchmark::kSecond)
      ->Iterations(1)
      ->Repetitions(sweep.repetitions)
      ->ReportAggregatesOnly(true);
  if (manual_time) {
    b->UseManualTime();
  } else {
    b->UseRealTime();
  }
}

void Register(const Sweep& sweep) {
  Configure(benchmark::RegisterBenchmark("BM_ImplicitAlsIteration", BM_ImplicitAlsIteration),
            sweep, sweep.sizes);
  Configure(benchmark::RegisterBenchmark("BM_ExplicitAlsIteration", BM_ExplicitAlsIteration),
            sweep, sweep.sizes);
  Configure(benchmark::RegisterBenchmark("BM_BpmfSweep", BM_BpmfSweep), sweep, sweep.sizes,
            /*manual_time=*/true);
  if (sweep.baseline_size > 0) {
    Sweep baseline = sweep;
    baseline.factors = {sweep.factors.front()};
    Configure(benchmark::RegisterBenchmark("BM_ImplicitAlsIterationCholesky",
                                           BM_ImplicitAlsIterationCholesky),
              baseline, {sweep.baseline_size});
  }
}

// "1,5,20" -> {1, 5, 20}; false if any entry is not a positive integer.
bool ParseList(const char* text, std::vector<int64_t>* out) {
  out->clear();
  std::string s = text;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    char* stop = nullptr;
    const std::string part = s.substr(start, end - start);
    const long long v = std::strtoll(part.c_str(), &stop, 10);
    if (part.empty() || *stop != '\0' || v <= 0) return false;
    out->push_back(v);
    start = end + 1;
  }
  return true;
}

}  // namespace
}  // namespace recloop

int main(int argc, char** argv) {
  // Our flags first; the rest goes to Google Benchmark.
  recloop::Sweep sweep;
  std::vector<char*> rest;
  bool ok = true;
  for (int i = 0; i < argc; ++i) {
    const char* a = argv[i];
    if (std::strncmp(a, "--sizes=", 8) == 0) {
      ok = ok && recloop::ParseList(a + 8, &sweep.sizes);
    } else if (std::strncmp(a, "--factors=", 10) == 0) {
      ok = ok && recloop::ParseList(a + 10, &sweep.factors);
    } else if (std::strncmp(a, "--repetitions=", 14) == 0) {
      sweep.repetitions = std::atoi(a + 14);
      ok = ok && sweep.repetitions > 0;
    } else if (std::strncmp(a, "--baseline_size=", 16) == 0) {
      sweep.baseline_size = std::atoll(a + 16);
      ok = ok && sweep.baseline_size >= 0;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (!ok) {
    std::fprintf(stderr,
                 "usage: als_bench [--sizes=M,...] [--factors=K,...] [--repetitions=N] "
                 "[--baseline_size=M (0 = none)] [benchmark flags]\n");
    return 2;
  }
  recloop::Register(sweep);
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
