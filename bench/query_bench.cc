// Per-query cost of serving from a model: top-n recommendations through the exact and the HNSW
// item index (with and without the exclude-seen filter), and fold-in of a user's history.
//
//   build/bench/query_bench                          (see BENCHMARKS.md)
//
// Each benchmark also reports the median and 99th percentile of the single-query latencies it
// timed (p50_us, p99_us), since a mean hides the tail that a storefront sees.
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <random>

#include "Eigen/Cholesky"
#include "benchmark/benchmark.h"
#include "engine/cholesky.h"
#include "engine/fold_in.h"
#include "engine/item_index.h"
#include "engine/recommender.h"

namespace recloop {
namespace {

constexpr int kFactors = 64;
constexpr int32_t kUsers = 10000;
constexpr int kSeenPerUser = 100;

// A model of Gaussian factors with item biases (explicit), `items` items and kUsers users who
// have each seen kSeenPerUser random items.
std::shared_ptr<const FactorModel> MakeModel(int32_t items) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  auto m = std::make_shared<FactorModel>();
  m->params.feedback = FeedbackKind::kExplicit;
  m->params.factors = kFactors;
  m->params.regularization = 0.1f;
  m->params.bias_regularization = 0.1f;
  std::vector<std::string> u(kUsers), it(items);
  for (int32_t i = 0; i < kUsers; ++i) u[i] = "u" + std::to_string(i);
  for (int32_t i = 0; i < items; ++i) it[i] = "i" + std::to_string(i);
  m->users = IdMap::FromExternals(std::move(u));
  m->items = IdMap::FromExternals(std::move(it));
  m->user_factors.resize(kUsers, kFactors);
  m->item_factors.resize(items, kFactors);
  for (int64_t j = 0; j < m->user_factors.size(); ++j) m->user_factors.data()[j] = normal(rng);
  for (int64_t j = 0; j < m->item_factors.size(); ++j) m->item_factors.data()[j] = normal(rng);
  m->user_bias = Eigen::VectorXf::Zero(kUsers);
  m->item_bias.resize(items);
  for (int32_t i = 0; i < items; ++i) m->item_bias[i] = normal(rng);
  m->global_mean = 3.5f;
  m->min_value = 1.0f;
  m->max_value = 5.0f;
  m->item_popularity = Eigen::VectorXf::Ones(items);
  std::vector<int32_t> row, col;
  std::vector<float> val;
  std::uniform_int_distribution<int32_t> pick(0, items - 1);
  for (int32_t r = 0; r < kUsers; ++r) {
    for (int s = 0; s < kSeenPerUser; ++s) {  // repeats are rare and harmless here
      row.push_back(r);
      col.push_back(pick(rng));
      val.push_back(4.0f);
    }
  }
  m->seen = CsrMatrix::FromTriplets(kUsers, items, row, col, val);
  return m;
}

struct Served {
  std::shared_ptr<const FactorModel> model;
  std::unique_ptr<Recommender> recommender;
};

// Built once per (items, index type, kernels) and kept: building is never timed.
const Served& Serve(int32_t items, IndexType type, bool native) {
  static std::map<std::tuple<int32_t, IndexType, bool>, Served> cache;
  static std::map<int32_t, std::shared_ptr<const FactorModel>> models;
  auto& slot = cache[{items, type, native}];
  if (!slot.recommender) {
    auto& model = models[items];
    if (!model) model = MakeModel(items);
    slot.model = model;
    ItemIndexOptions options;
    options.type = type;
    options.native_kernels = native;
    auto index = ItemIndex::Build(*slot.model, options);
    if (!index.ok()) std::abort();
    auto rec = Recommender::Create(slot.model,
                                   std::make_shared<const ItemIndex>(std::move(*index)));
    if (!rec.ok()) std::abort();
    slot.recommender = std::make_unique<Recommender>(std::move(*rec));
  }
  return slot;
}

void ReportPercentiles(benchmark::State& state, std::vector<double>* micros) {
  if (micros->empty()) return;
  std::sort(micros->begin(), micros->end());
  state.counters["p50_us"] = (*micros)[micros->size() / 2];
  state.counters["p99_us"] = (*micros)[std::min(micros->size() - 1, micros->size() * 99 / 100)];
}

// Args: {items, 0 = exact / 1 = HNSW, exclude seen, 1 = recloop's kernels / 0 = libfaiss's}.
void BM_Recommend(benchmark::State& state) {
  const auto items = static_cast<int32_t>(state.range(0));
  const IndexType type = state.range(1) == 0 ? IndexType::kExact : IndexType::kHnsw;
  const Served& s = Serve(items, type, state.range(3) != 0);
  RecommendOptions options;
  options.n = 10;
  options.exclude_seen = state.range(2) != 0;
  std::vector<double> micros;
  int32_t user = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    auto recs = s.recommender->Recommend(user, options);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    if (!recs.ok() || recs->size() != 10) std::abort();
    benchmark::DoNotOptimize(recs->data());
    user = (user + 7919) % kUsers;  // vary users
  }
  ReportPercentiles(state, &micros);
}
BENCHMARK(BM_Recommend)
    ->ArgNames({"items", "hnsw", "exclude_seen", "native"})
    ->ArgsProduct({{10000, 100000}, {0, 1}, {0, 1}, {1}})
    ->ArgsProduct({{10000, 100000}, {0, 1}, {1}, {0}})  // the in-run baseline: libfaiss kernels
    ->Args({1000000, 0, 1, 1})
    ->Args({1000000, 0, 1, 0})
    ->Unit(benchmark::kMicrosecond);

// Args: {interactions in the history, kind}. Kind 0: explicit (a vector and a bias). Kind 1:
// implicit trained by Cholesky (cg_steps 0), folded by Cholesky. Kind 2: implicit trained by CG
// (the default), folded by CG warm-started from the user's previous vector (the fold of the same
// history without its last item, as the server's previous entry), to kFoldCgTolerance. Kind 3:
// as 2 from no start. Implicit models have the training defaults λ = 100, α = 8, log confidence.
void BM_FoldIn(benchmark::State& state) {
  const auto n = static_cast<int>(state.range(0));
  const int kind = static_cast<int>(state.range(1));
  static const auto explicit_model = MakeModel(27000);
  const auto implicit_with = [](int cg_steps) {
    auto m = std::make_shared<FactorModel>(*explicit_model);
    m->params.feedback = FeedbackKind::kImplicit;
    m->params.regularization = 100.0f;
    m->params.alpha = 8.0f;
    m->params.confidence = Confidence::kLog;
    m->params.cg_steps = cg_steps;
    return std::shared_ptr<const FactorModel>(std::move(m));
  };
  static const auto cholesky_model = implicit_with(0);
  static const auto cg_model = implicit_with(3);
  static const auto explicit_fold = FoldIn::Create(*explicit_model);
  static const auto cholesky_fold = FoldIn::Create(*cholesky_model);
  static const auto cg_fold = FoldIn::Create(*cg_model);
  const auto& fold = kind == 0 ? explicit_fold : kind == 1 ? cholesky_fold : cg_fold;
  const auto& model = kind == 0 ? explicit_model : kind == 1 ? cholesky_model : cg_model;
  if (!fold.ok()) std::abort();
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick(0, model->num_items() - 1);
  std::uniform_int_distribution<int> value(1, 5);
  std::vector<int32_t> items(n);
  std::vector<float> values(n);
  Eigen::VectorXf start;
  std::vector<double> micros;
  for (auto _ : state) {
    state.PauseTiming();
    for (auto& i : items) i = pick(rng);
    for (auto& v : values) v = static_cast<float>(value(rng));
    if (kind == 2) {
      auto previous = fold->Fold(std::span(items).first(n - 1), std::span(values).first(n - 1));
      if (!previous.ok()) std::abort();
      start = previous->factors;
    }
    state.ResumeTiming();
    const auto begin = std::chrono::steady_clock::now();
    auto user = fold->Fold(items, values, std::span<const float>(start.data(), start.size()));
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin)
            .count());
    if (!user.ok()) std::abort();
    benchmark::DoNotOptimize(user->factors.data());
  }
  ReportPercentiles(state, &micros);
}
BENCHMARK(BM_FoldIn)
    ->ArgNames({"history", "kind"})
    ->ArgsProduct({{10, 50, 100, 1000}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMicrosecond);

// Args: {K, blocked}: one fold-in's solve of a K x K system (factorise, then one right-hand
// side), with Eigen's blocked LLT (1, what fold-in and ALS used before) or its unblocked kernel
// (0): the in-run baseline of engine/cholesky.h's choice between them.
void BM_SmallCholesky(benchmark::State& state) {
  const auto k = static_cast<int>(state.range(0));
  const bool blocked = state.range(1) != 0;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  Eigen::MatrixXf y(k, 4 * k);
  for (int64_t i = 0; i < y.size(); ++i) y.data()[i] = normal(rng);
  Eigen::MatrixXf spd = y * y.transpose();
  spd.diagonal().array() += 1.0f;
  Eigen::VectorXf b = Eigen::VectorXf::Ones(k), x;
  Eigen::MatrixXf a;
  for (auto _ : state) {
    a = spd;
    x = b;
    if (blocked) {
      Eigen::LLT<Eigen::Ref<Eigen::MatrixXf>, Eigen::Lower> llt(a);
      llt.solveInPlace(x);
    } else {
      if (Eigen::internal::llt_inplace<float, Eigen::Lower>::unblocked(a) >= 0) std::abort();
      CholeskySolveInPlace(a, x);
    }
    benchmark::DoNotOptimize(x.data());
  }
}
BENCHMARK(BM_SmallCholesky)
    ->ArgNames({"K", "blocked"})
    ->ArgsProduct({{16, 32, 64, 128}, {1, 0}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace recloop

BENCHMARK_MAIN();
