// The item index on a trained model: load time and memory of the model version, index build
// time, and per-query latency and recall@10 of HNSW (at several beam widths) against exact
// search; plus the effect of FAISS's OpenMP setting when two threads query at once.
//
//   build/bench/index_bench --model=MODELS_DIR [google benchmark flags]
//
// bench/run_serving.sh trains the models it is run on (see BENCHMARKS.md). Queries are the
// factor vectors of up to 2,000 of the model's users (every k-th user), n = 10, no filters:
// recall@10 is |HNSW top-10 ∩ exact top-10| / 10, averaged over the queries a benchmark ran.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "engine/recommender.h"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kN = 10;
constexpr int32_t kMaxQueries = 2000;

std::string g_model_dir;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Resident set size now, from /proc/self/statm.
double RssMb() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * 4096.0 / 1e6;
}

[[noreturn]] void Die(const absl::Status& s) {
  std::fprintf(stderr, "index_bench: %s\n", std::string(s.message()).c_str());
  std::exit(1);
}

struct Fixture {
  std::shared_ptr<const FactorModel> model;
  std::shared_ptr<const ItemIndex> exact;
  std::shared_ptr<const ItemIndex> hnsw;
  std::unique_ptr<Recommender> exact_rec, hnsw_rec;
  bool hnsw_built_here = false;
  std::vector<float> queries;          // num_queries x dim
  std::vector<int64_t> truth;          // num_queries x kN, from the exact index
  int32_t num_queries = 0;
  double load_s = 0, load_mb = 0, index_load_s = -1, index_mb = 0;
  double exact_build_s = 0, hnsw_build_s = 0;
};

Fixture& Get() {
  static Fixture* f = [] {
    auto* fx = new Fixture;
    auto dir = ResolveModelDir(g_model_dir);
    if (!dir.ok()) Die(dir.status());
    const double rss0 = RssMb();
    auto start = Clock::now();
    auto model = LoadModel(*dir);
    if (!model.ok()) Die(model.status());
    fx->load_s = SecondsSince(start);
    fx->load_mb = RssMb() - rss0;
    fx->model = std::make_shared<const FactorModel>(std::move(*model));
    // The index saved beside the model (what the server loads), kept alive while measured.
    const std::string index_path = *dir + "/" + kItemIndexFileName;
    if (std::ifstream(index_path).good()) {
      const double rss1 = RssMb();
      start = Clock::now();
      auto saved = ItemIndex::Load(index_path);
      if (!saved.ok()) Die(saved.status());
      fx->index_load_s = SecondsSince(start);
      fx->index_mb = RssMb() - rss1;
      std::printf("saved index %s (%s): load %.3f s, +%.0f MB resident\n", index_path.c_str(),
                  std::string(ToString(saved->type())).c_str(), fx->index_load_s, fx->index_mb);
      // A saved HNSW index is the one measured (its build time is what `recloop train`
      // printed); otherwise one is built here.
      if (saved->type() == IndexType::kHnsw) fx->hnsw = std::make_shared<ItemIndex>(std::move(*saved));
    }
    if (!fx->model->has_factors()) Die(absl::InvalidArgumentError("the model has no factors"));
    ItemIndexOptions options;
    options.type = IndexType::kExact;
    start = Clock::now();
    auto exact = ItemIndex::Build(*fx->model, options);
    if (!exact.ok()) Die(exact.status());
    fx->exact_build_s = SecondsSince(start);
    fx->exact = std::make_shared<ItemIndex>(std::move(*exact));
    if (fx->hnsw == nullptr) {
      options.type = IndexType::kHnsw;
      start = Clock::now();
      auto hnsw = ItemIndex::Build(*fx->model, options);  // both indexes (scores and cosine)
      if (!hnsw.ok()) Die(hnsw.status());
      fx->hnsw_build_s = SecondsSince(start);
      fx->hnsw = std::make_shared<ItemIndex>(std::move(*hnsw));
      fx->hnsw_built_here = true;
    }

    auto exact_rec = Recommender::Create(fx->model, fx->exact);
    auto hnsw_rec = Recommender::Create(fx->model, fx->hnsw);
    if (!exact_rec.ok()) Die(exact_rec.status());
    if (!hnsw_rec.ok()) Die(hnsw_rec.status());
    fx->exact_rec = std::make_unique<Recommender>(std::move(*exact_rec));
    fx->hnsw_rec = std::make_unique<Recommender>(std::move(*hnsw_rec));

    const int32_t users = fx->model->num_users();
    const int32_t step = std::max(1, users / kMaxQueries);
    const int dim = fx->exact->dim();
    std::vector<float> q(dim);
    for (int32_t u = 0; u < users && fx->num_queries < kMaxQueries; u += step) {
      const auto row = fx->model->user_factors.row(u);
      if (row.squaredNorm() == 0) continue;  // users fitted to nothing
      fx->exact->MakeQuery({row.data(), static_cast<size_t>(row.size())}, q);
      fx->queries.insert(fx->queries.end(), q.begin(), q.end());
      ++fx->num_queries;
    }
    fx->truth.resize(static_cast<size_t>(fx->num_queries) * kN);
    std::vector<float> scores(fx->truth.size());
    ItemSearchParams all_threads;
    all_threads.omp_threads = 0;
    if (auto s = fx->exact->Search(fx->num_queries, fx->queries.data(), kN, scores.data(),
                                   fx->truth.data(), all_threads);
        !s.ok()) {
      Die(s);
    }
    std::printf("model %s: %d users, %d items, K = %d; load %.3f s, +%.0f MB resident; "
                "build exact %.3f s, HNSW (scores + cosine, %d threads) %s\n",
                dir->c_str(), users, fx->model->num_items(), fx->exact->factors(), fx->load_s,
                fx->load_mb, fx->exact_build_s, omp_get_max_threads(),
                fx->hnsw_built_here ? (std::to_string(fx->hnsw_build_s) + " s").c_str()
                                    : "loaded (see recloop train's output)");
    return fx;
  }();
  return *f;
}

double Recall(const int64_t* got, const int64_t* want) {
  int hit = 0;
  for (int i = 0; i < kN; ++i) {
    hit += std::find(want, want + kN, got[i]) != want + kN ? 1 : 0;
  }
  return hit / static_cast<double>(kN);
}

void Report(benchmark::State& state, std::vector<double>* micros, double recall_sum,
            int64_t queries) {
  std::sort(micros->begin(), micros->end());
  if (!micros->empty()) {
    state.counters["p50_us"] = (*micros)[micros->size() / 2];
    state.counters["p99_us"] = (*micros)[std::min(micros->size() - 1, micros->size() * 99 / 100)];
  }
  if (queries > 0) state.counters["recall@10"] = recall_sum / queries;
}

// Args: {0 = exact / beam width efSearch of HNSW, HNSW search loop: 1 = recloop's, 0 = FAISS
// 1.7.3's (the baseline, same graph)}. One query at a time, one thread.
void BM_Search(benchmark::State& state) {
  Fixture& f = Get();
  const int ef = static_cast<int>(state.range(0));
  const ItemIndex& index = ef == 0 ? *f.exact : *f.hnsw;
  ItemSearchParams params;  // omp_threads = 1: the serving setting
  params.ef_search = ef;
  params.native_hnsw_search = state.range(1) != 0;
  const int dim = index.dim();
  std::vector<float> scores(kN);
  std::vector<int64_t> items(kN);
  std::vector<double> micros;
  double recall = 0;
  int64_t q = 0;
  for (auto _ : state) {
    const int32_t i = static_cast<int32_t>(q % f.num_queries);
    const auto start = Clock::now();
    const absl::Status s = index.Search(1, f.queries.data() + int64_t{i} * dim, kN,
                                        scores.data(), items.data(), params);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!s.ok()) Die(s);
    recall += Recall(items.data(), f.truth.data() + int64_t{i} * kN);
    ++q;
  }
  Report(state, &micros, recall, q);
  state.counters["items"] = f.model->num_items();
  if (ef == 0 || f.hnsw_built_here) {
    state.counters["build_s"] = ef == 0 ? f.exact_build_s : f.hnsw_build_s;
  }
}
BENCHMARK(BM_Search)
    ->ArgNames({"ef", "native_loop"})
    ->Args({0, 1})
    ->Args({16, 1})
    ->Args({32, 1})
    ->Args({64, 1})
    ->Args({64, 0})
    ->Args({128, 1})
    ->Args({128, 0})
    ->Args({256, 1})
    ->Args({256, 0})
    ->Unit(benchmark::kMicrosecond);

// Through the Recommender with the exclude-seen filter (the storefront's query): the user's
// training items are dropped, over-fetching from the index. Args: {0 = exact / 1 = HNSW}.
void BM_RecommendExcludeSeen(benchmark::State& state) {
  Fixture& f = Get();
  const Recommender& rec = state.range(0) == 0 ? *f.exact_rec : *f.hnsw_rec;
  RecommendOptions options;
  options.n = kN;
  std::vector<double> micros;
  const int32_t users = f.model->num_users();
  int32_t u = 0;
  for (auto _ : state) {
    const auto start = Clock::now();
    auto recs = rec.Recommend(u, options);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!recs.ok()) Die(recs.status());
    benchmark::DoNotOptimize(recs->data());
    u = (u + 7919) % users;
  }
  Report(state, &micros, 0, 0);
}
BENCHMARK(BM_RecommendExcludeSeen)->ArgName("hnsw")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

// Two threads query HNSW at once (as two server threads would), each call with the given
// OpenMP team size: 1 (recloop's serving setting) or 0 (OpenMP's default, one thread per core:
// FAISS's HNSW search opens a parallel region even for a single query).
void BM_ConcurrentOmp(benchmark::State& state) {
  Fixture& f = Get();
  ItemSearchParams params;
  params.omp_threads = static_cast<int>(state.range(0));
  params.ef_search = 64;
  const int dim = f.hnsw->dim();
  std::vector<float> scores(kN);
  std::vector<int64_t> items(kN);
  std::vector<double> micros;
  int64_t q = state.thread_index() * 7919;
  for (auto _ : state) {
    const int32_t i = static_cast<int32_t>(q % f.num_queries);
    const auto start = Clock::now();
    const absl::Status s = f.hnsw->Search(1, f.queries.data() + int64_t{i} * dim, kN,
                                          scores.data(), items.data(), params);
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (!s.ok()) Die(s);
    ++q;
  }
  Report(state, &micros, 0, 0);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ConcurrentOmp)
    ->ArgName("omp_threads")
    ->Arg(1)
    ->Arg(0)
    ->Threads(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace recloop

int main(int argc, char** argv) {
  // Our flag first; the rest goes to Google Benchmark.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--model=", 8) == 0) {
      recloop::g_model_dir = argv[i] + 8;
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (recloop::g_model_dir.empty()) {
    std::fprintf(stderr, "usage: index_bench --model=MODELS_DIR [benchmark flags]\n");
    return 2;
  }
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  recloop::Get();  // load and build before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
