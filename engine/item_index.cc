#include "engine/item_index.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "Eigen/Core"
#include "absl/strings/str_cat.h"
#include "engine/index_calibration.h"
#include "engine/top_k.h"
#include "faiss/Index.h"
#include "faiss/IndexFlat.h"
#include "faiss/IndexHNSW.h"
#include "faiss/impl/HNSW.h"
#include "faiss/impl/io.h"
#include "faiss/index_io.h"
#include "xxhash.h"

namespace recloop {
namespace {

// FAISS's label type must be ours, so that `items` goes to FAISS without a copy.
static_assert(std::is_same_v<faiss::Index::idx_t, int64_t>);

// File layout: Header, then `payload_bytes` bytes holding the inner-product index followed by
// the cosine index, each in FAISS's own serialisation. The checksum covers the payload so that
// a flipped byte is reported as DataLoss before FAISS parses (and possibly trusts) it.
constexpr char kMagic[8] = {'R', 'L', 'I', 'T', 'E', 'M', 'I', 'X'};
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kFlagHasBias = 1;

struct Header {
  char magic[8];
  uint32_t format_version;
  uint32_t flags;
  int32_t factors;
  int32_t num_items;
  uint64_t payload_bytes;
  uint64_t payload_xxh64;
};
static_assert(sizeof(Header) == 40);

// Sets this thread's OpenMP team size for the duration of a call and restores it after.
// omp_set_num_threads changes only the calling thread's ICV, so concurrent searches on other
// threads are unaffected.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
    if (threads > 0) omp_set_num_threads(threads);
  }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};

// Native inner-product kernels for FAISS's flat storage.
//
// Debian's libfaiss is a generic x86-64 build (no AVX2 variant is packaged), so its
// fvec_inner_product and exhaustive search run at about one float per nanosecond. NativeFlatIP
// is an IndexFlatIP whose exhaustive search (a blocked Eigen matrix product plus TopK) and whose
// distance computer (what HNSW calls for every graph hop, in search and in construction) are
// compiled here, with this build's -march. It stores and serialises exactly like IndexFlatIP
// (write_index sees an IndexFlat and writes "IxFI"), so saved indexes stay plain FAISS files;
// Load converts what FAISS reads back into this type.
using FaissIdx = faiss::Index::idx_t;

inline float Dot(const float* a, const float* b, int d) {
  return Eigen::Map<const Eigen::VectorXf>(a, d).dot(Eigen::Map<const Eigen::VectorXf>(b, d));
}

struct NativeIPDistance final : faiss::FlatCodesDistanceComputer {
  explicit NativeIPDistance(const faiss::IndexFlat& index)
      : faiss::FlatCodesDistanceComputer(index.codes.data(), index.code_size),
        base(index.get_xb()),
        d(static_cast<int>(index.d)) {}
  void set_query(const float* x) override { query = x; }
  float distance_to_code(const uint8_t* code) override {
    return Dot(query, reinterpret_cast<const float*>(code), d);
  }
  float symmetric_dis(FaissIdx i, FaissIdx j) override {
    return Dot(base + i * d, base + j * d, d);
  }
  const float* base;
  int d;
  const float* query = nullptr;
};

struct NativeFlatIP final : faiss::IndexFlatIP {
  explicit NativeFlatIP(FaissIdx dim) : faiss::IndexFlatIP(dim) {}

  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override {
    return new NativeIPDistance(*this);
  }

  // Exact top-k by inner product: scores for a block of queries at a time (one matrix-vector
  // product for a single query, a matrix product for a batch), then an exact selection. Runs on
  // the calling thread only. Missing results (k > ntotal) get label -1.
  void search(FaissIdx n, const float* x, FaissIdx k, float* distances, FaissIdx* labels,
              const faiss::SearchParameters* params = nullptr) const override {
    FAISS_THROW_IF_NOT_MSG(params == nullptr, "NativeFlatIP takes no search parameters");
    FAISS_THROW_IF_NOT(k > 0);
    constexpr FaissIdx kBlock = 32;
    const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
        items(get_xb(), ntotal, d);
    thread_local Eigen::MatrixXf scores;  // ntotal x queries of the block, column per query
    for (FaissIdx q0 = 0; q0 < n; q0 += kBlock) {
      const FaissIdx b = std::min(kBlock, n - q0);
      const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
          queries(x + q0 * d, b, d);
      scores.resize(ntotal, b);
      scores.noalias() = items * queries.transpose();
      for (FaissIdx j = 0; j < b; ++j) {
        const auto top = TopK(std::span<const float>(scores.col(j).data(), ntotal),
                              static_cast<int>(std::min<FaissIdx>(k, ntotal)));
        float* dist = distances + (q0 + j) * k;
        FaissIdx* lab = labels + (q0 + j) * k;
        for (FaissIdx r = 0; r < k; ++r) {
          const bool have = r < static_cast<FaissIdx>(top.size());
          dist[r] = have ? top[r].score : -std::numeric_limits<float>::infinity();
          lab[r] = have ? top[r].item : -1;
        }
      }
    }
  }
};

// HNSW search over FAISS's graph with native kernels: greedy descent through the upper layers,
// then a beam of width ef on layer 0 (Malkov & Yashunin, algorithm 2). FAISS 1.7.3's own loop
// scores one neighbour at a time, so each score waits on a cache miss (a K = 64 vector is four
// cache lines, and neighbours are scattered), and its candidate heap pops by linear scan; here
// the unvisited neighbours of a node are gathered and all their vectors prefetched before any
// is scored, and both heaps are binary. Larger inner product is better throughout.
using Scored = std::pair<float, FaissIdx>;

// A search's working memory, kept per thread and reused: the visited table is O(items).
struct HnswScratch {
  std::vector<uint32_t> visited;  // visited[v] == generation: seen in this search
  uint32_t generation = 0;
  std::vector<Scored> candidates, results;
  std::vector<FaissIdx> fresh;
};

class NativeHnswSearcher {
 public:
  NativeHnswSearcher(const faiss::HNSW& hnsw, const NativeFlatIP& storage, HnswScratch& scratch)
      : hnsw_(hnsw),
        base_(storage.get_xb()),
        d_(static_cast<int>(storage.d)),
        ntotal_(storage.ntotal),
        visited_(scratch.visited),
        generation_(scratch.generation),
        candidates_(scratch.candidates),
        results_(scratch.results),
        fresh_(scratch.fresh) {}

  // The best min(k, ntotal) items for `query` (sorted, best first); the rest get label -1.
  void Search(const float* query, int k, int ef, float* scores, FaissIdx* labels) {
    std::fill_n(labels, k, FaissIdx{-1});
    std::fill_n(scores, k, -std::numeric_limits<float>::infinity());
    if (ntotal_ == 0 || hnsw_.entry_point < 0) return;
    NextGeneration();
    FaissIdx entry = hnsw_.entry_point;
    float entry_score = Score(query, entry);
    for (int level = hnsw_.max_level; level >= 1; --level) {
      for (bool moved = true; moved;) {  // greedy: move to the best neighbour while it improves
        moved = false;
        size_t begin, end;
        hnsw_.neighbor_range(entry, level, &begin, &end);
        for (size_t j = begin; j < end; ++j) {
          const FaissIdx v = hnsw_.neighbors[j];
          if (v < 0) break;
          const float s = Score(query, v);
          if (s > entry_score) {
            entry = v;
            entry_score = s;
            moved = true;
          }
        }
      }
    }
    // Layer 0. candidates: best first (max-heap); results: the ef best so far, worst on top.
    candidates_.clear();
    results_.clear();
    auto better = [](const Scored& a, const Scored& b) { return a.first < b.first; };
    auto worse = [](const Scored& a, const Scored& b) { return a.first > b.first; };
    candidates_.push_back({entry_score, entry});
    results_.push_back({entry_score, entry});
    Visit(entry);
    while (!candidates_.empty()) {
      std::pop_heap(candidates_.begin(), candidates_.end(), better);
      const Scored c = candidates_.back();
      candidates_.pop_back();
      if (static_cast<int>(results_.size()) >= ef && c.first < results_.front().first) break;
      size_t begin, end;
      hnsw_.neighbor_range(c.second, 0, &begin, &end);
      fresh_.clear();
      for (size_t j = begin; j < end; ++j) {
        const FaissIdx v = hnsw_.neighbors[j];
        if (v < 0) break;
        if (!Visit(v)) continue;
        fresh_.push_back(v);
        const char* row = reinterpret_cast<const char*>(base_ + v * d_);
        for (int b = 0; b < d_ * static_cast<int>(sizeof(float)); b += 64) {
          __builtin_prefetch(row + b);
        }
      }
      for (const FaissIdx v : fresh_) {
        const float s = Score(query, v);
        if (static_cast<int>(results_.size()) < ef || s > results_.front().first) {
          candidates_.push_back({s, v});
          std::push_heap(candidates_.begin(), candidates_.end(), better);
          results_.push_back({s, v});
          std::push_heap(results_.begin(), results_.end(), worse);
          if (static_cast<int>(results_.size()) > ef) {
            std::pop_heap(results_.begin(), results_.end(), worse);
            results_.pop_back();
          }
        }
      }
    }
    std::sort_heap(results_.begin(), results_.end(), worse);  // best first
    const int n = std::min<int>(k, static_cast<int>(results_.size()));
    for (int r = 0; r < n; ++r) {
      scores[r] = results_[r].first;
      labels[r] = results_[r].second;
    }
  }

 private:
  float Score(const float* query, FaissIdx v) const { return Dot(query, base_ + v * d_, d_); }

  // Marks v visited; false if it already was in this search.
  bool Visit(FaissIdx v) {
    if (visited_[v] == generation_) return false;
    visited_[v] = generation_;
    return true;
  }

  void NextGeneration() {
    if (visited_.size() != static_cast<size_t>(ntotal_) || ++generation_ == 0) {
      visited_.assign(ntotal_, 0);
      generation_ = 1;
    }
  }

  const faiss::HNSW& hnsw_;
  const float* base_;
  int d_;
  FaissIdx ntotal_;
  std::vector<uint32_t>& visited_;
  uint32_t& generation_;
  std::vector<Scored>& candidates_;
  std::vector<Scored>& results_;
  std::vector<FaissIdx>& fresh_;
};

void SearchNativeHnsw(const faiss::IndexHNSW& index, const NativeFlatIP& storage, FaissIdx n,
                      const float* queries, int k, int ef, float* scores, FaissIdx* labels) {
  thread_local HnswScratch scratch;
  NativeHnswSearcher searcher(index.hnsw, storage, scratch);
  for (FaissIdx q = 0; q < n; ++q) {
    searcher.Search(queries + q * storage.d, k, ef, scores + q * k, labels + q * k);
  }
}

// Moves the vectors of a plain FAISS flat index (as read from disk) into a NativeFlatIP.
std::unique_ptr<NativeFlatIP> ToNative(faiss::IndexFlat* flat) {
  auto native = std::make_unique<NativeFlatIP>(flat->d);
  native->codes.swap(flat->codes);
  native->ntotal = flat->ntotal;
  flat->ntotal = 0;
  return native;
}

std::unique_ptr<faiss::Index> NewIndex(IndexType type, int dim, const ItemIndexOptions& o) {
  if (type == IndexType::kHnsw) {
    auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(dim, o.hnsw_m, faiss::METRIC_INNER_PRODUCT);
    hnsw->hnsw.efConstruction = o.hnsw_ef_construction;
    hnsw->hnsw.efSearch = o.hnsw_ef_search;
    if (o.native_kernels) {  // still empty: swap in the native storage (owned, own_fields)
      delete hnsw->storage;
      hnsw->storage = new NativeFlatIP(dim);
    }
    return hnsw;
  }
  if (o.native_kernels) return std::make_unique<NativeFlatIP>(dim);
  return std::make_unique<faiss::IndexFlatIP>(dim);
}

// Converts an index FAISS read back (IndexFlatIP, or IndexHNSWFlat over one) to native kernels.
// Returns false if the index is of another type.
bool MakeNative(std::unique_ptr<faiss::Index>& index) {
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
    auto* flat = dynamic_cast<faiss::IndexFlat*>(hnsw->storage);
    if (flat == nullptr || !hnsw->own_fields) return false;
    hnsw->storage = ToNative(flat).release();
    delete flat;
    return true;
  }
  auto* flat = dynamic_cast<faiss::IndexFlat*>(index.get());
  if (flat == nullptr) return false;
  index = ToNative(flat);
  return true;
}

void NormalizeRows(std::vector<float>& m, int64_t rows, int dim) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = m.data() + r * dim;
    double norm = 0;
    for (int j = 0; j < dim; ++j) norm += double{row[j]} * row[j];
    // A zero vector stays zero: it is similar to nothing (cosine 0) rather than NaN.
    if (norm > 0) {
      const float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (int j = 0; j < dim; ++j) row[j] *= inv;
    }
  }
}

// The index rows of the model's items from `from` on: the inner-product vectors (factors, and
// the bias when the model has biases) and the L2-normalised factors for cosine search.
void ItemVectors(const FactorModel& model, int64_t from, std::vector<float>& vectors,
                 std::vector<float>& normalized) {
  const int64_t n = model.item_factors.rows() - from;
  const int k = static_cast<int>(model.item_factors.cols());
  const bool has_bias = model.has_biases();
  const int dim = k + (has_bias ? 1 : 0);
  vectors.assign(static_cast<size_t>(n) * dim, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(vectors.data() + i * dim, model.item_factors.row(from + i).data(),
                sizeof(float) * k);
    if (has_bias) vectors[i * dim + k] = model.item_bias[from + i];
  }
  normalized.assign(model.item_factors.data() + from * k,
                    model.item_factors.data() + (from + n) * k);
  NormalizeRows(normalized, n, k);
}

// A copy of the HNSW index `old` (graph and stored vectors) with the n rows of `x` added to its
// graph, as FAISS adds to a built index: the old nodes keep their links, the new ones are linked
// in. Its storage is native if the old one was.
std::unique_ptr<faiss::Index> CopyAndAdd(const faiss::IndexHNSW& old, int64_t n, const float* x) {
  const auto* flat = dynamic_cast<const faiss::IndexFlat*>(old.storage);
  if (flat == nullptr) throw std::runtime_error("HNSW index over a storage that is not flat");
  auto copy = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(old.d), 2, old.metric_type);
  copy->hnsw = old.hnsw;
  delete copy->storage;
  std::unique_ptr<faiss::IndexFlat> storage;
  if (dynamic_cast<const NativeFlatIP*>(flat) != nullptr) {
    storage = std::make_unique<NativeFlatIP>(old.d);
  } else {
    storage = std::make_unique<faiss::IndexFlat>(old.d, flat->metric_type);
  }
  storage->codes = flat->codes;
  storage->ntotal = flat->ntotal;
  copy->storage = storage.release();
  copy->ntotal = old.ntotal;
  copy->add(n, x);
  return copy;
}

IndexType TypeOf(const faiss::Index& index) {
  return dynamic_cast<const faiss::IndexHNSW*>(&index) != nullptr ? IndexType::kHnsw
                                                                  : IndexType::kExact;
}

}  // namespace

std::string_view ToString(IndexType t) {
  switch (t) {
    case IndexType::kAuto:
      return "auto";
    case IndexType::kExact:
      return "exact";
    case IndexType::kHnsw:
      return "hnsw";
  }
  return "unknown";
}

absl::StatusOr<IndexType> ParseIndexType(std::string_view s) {
  if (s == "auto") return IndexType::kAuto;
  if (s == "exact" || s == "flat") return IndexType::kExact;
  if (s == "hnsw") return IndexType::kHnsw;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown index type '", std::string(s), "' (expected auto, exact or hnsw)"));
}

struct ItemIndex::Impl {
  int factors = 0;
  bool has_bias = false;
  int hnsw_ef_search = 0;
  double measured_recall = -1;           // see ItemIndex::measured_recall
  std::unique_ptr<faiss::Index> ip;      // dim factors (+1 with bias)
  std::unique_ptr<faiss::Index> cosine;  // dim factors, normalised rows

  absl::Status DoSearch(const faiss::Index& index, int64_t n, const float* queries, int k,
                        float* scores, int64_t* items, const ItemSearchParams& params) const {
    if (n < 0 || k < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("search needs n >= 0 and k >= 1, got n = ", n, ", k = ", k));
    }
    if (n == 0) return absl::OkStatus();
    if (queries == nullptr || scores == nullptr || items == nullptr) {
      return absl::InvalidArgumentError("search given a null array");
    }
    ScopedOmpThreads threads(params.omp_threads);
    try {
      const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(&index);
      const auto* native =
          hnsw != nullptr ? dynamic_cast<const NativeFlatIP*>(hnsw->storage) : nullptr;
      // The beam must be at least k to return k results.
      const int ef = std::max(params.ef_search > 0 ? params.ef_search : hnsw_ef_search, k);
      if (native != nullptr && params.native_hnsw_search) {
        SearchNativeHnsw(*hnsw, *native, n, queries, k, ef, scores, items);
      } else if (hnsw != nullptr) {
        // Per-call parameters rather than mutating hnsw.efSearch, which would race between
        // concurrent searches.
        faiss::SearchParametersHNSW p;
        p.efSearch = ef;
        if (p.efSearch == k) {
          index.search(n, queries, k, scores, items, &p);
        } else {
          // FAISS 1.7.3 sizes the candidate queue by max(the index's own efSearch, k), not by
          // the per-call efSearch, so a beam wider than the saved default would silently be
          // cut to it. Asking for efSearch results makes the queue as wide as the beam; the
          // best k of them (sorted) are kept.
          const int wide = p.efSearch;
          std::vector<float> s(static_cast<size_t>(n) * wide);
          std::vector<int64_t> l(s.size());
          index.search(n, queries, wide, s.data(), l.data(), &p);
          for (int64_t q = 0; q < n; ++q) {
            std::copy_n(s.data() + q * wide, k, scores + q * k);
            std::copy_n(l.data() + q * wide, k, items + q * k);
          }
        }
      } else {
        index.search(n, queries, k, scores, items);
      }
    } catch (const std::exception& e) {
      // FAISS reports misuse and allocation failures by throwing; no exception leaves engine.
      return absl::InternalError(absl::StrCat("FAISS search failed: ", e.what()));
    }
    // FAISS marks missing results with label -1 and a min-heap sentinel score; normalise it.
    for (int64_t j = 0; j < n * k; ++j) {
      if (items[j] < 0) scores[j] = -std::numeric_limits<float>::infinity();
    }
    return absl::OkStatus();
  }
};

ItemIndex::ItemIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ItemIndex::ItemIndex(ItemIndex&&) noexcept = default;
ItemIndex& ItemIndex::operator=(ItemIndex&&) noexcept = default;
ItemIndex::~ItemIndex() = default;

int32_t ItemIndex::num_items() const { return static_cast<int32_t>(impl_->ip->ntotal); }
int ItemIndex::factors() const { return impl_->factors; }
int ItemIndex::dim() const { return impl_->factors + (impl_->has_bias ? 1 : 0); }
bool ItemIndex::has_bias() const { return impl_->has_bias; }
IndexType ItemIndex::type() const { return TypeOf(*impl_->ip); }
int ItemIndex::default_ef_search() const {
  return type() == IndexType::kHnsw ? impl_->hnsw_ef_search : 0;
}

double ItemIndex::measured_recall() const { return impl_->measured_recall; }

void ItemIndex::SetDefaultEfSearch(int ef, double measured_recall) {
  if (type() != IndexType::kHnsw || ef < 1) return;
  impl_->hnsw_ef_search = ef;
  impl_->measured_recall = measured_recall;
  for (faiss::Index* index : {impl_->ip.get(), impl_->cosine.get()}) {
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index)) hnsw->hnsw.efSearch = ef;
  }
}

absl::StatusOr<ItemIndex> ItemIndex::Build(const FactorModel& model,
                                           const ItemIndexOptions& options) {
  if (!model.has_factors() || model.item_factors.rows() == 0) {
    return absl::InvalidArgumentError("an item index needs a factor model with items");
  }
  if (options.hnsw_m < 2) return absl::InvalidArgumentError("hnsw_m must be >= 2");
  if (options.hnsw_ef_construction < 1) {
    return absl::InvalidArgumentError("hnsw_ef_construction must be >= 1");
  }
  if (options.hnsw_ef_search < 1) return absl::InvalidArgumentError("hnsw_ef_search must be >= 1");
  if (options.hnsw_min_items < 0) return absl::InvalidArgumentError("hnsw_min_items must be >= 0");
  if (options.build_threads < 0) return absl::InvalidArgumentError("build_threads must be >= 0");
  const int64_t n = model.item_factors.rows();
  const int k = static_cast<int>(model.item_factors.cols());
  const bool has_bias = model.has_biases();
  if (has_bias && model.item_bias.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("item_bias has ", model.item_bias.size(), " entries for ", n, " items"));
  }
  if (options.auto_min_recall <= 0 || options.auto_min_recall > 1) {
    return absl::InvalidArgumentError("auto_min_recall must be in (0, 1]");
  }
  IndexType type = options.type;
  if (type == IndexType::kAuto) {
    if (n >= options.hnsw_min_items) return BuildCalibratedIndex(model, options);
    type = IndexType::kExact;
  }

  auto impl = std::make_unique<Impl>();
  impl->factors = k;
  impl->has_bias = has_bias;
  impl->hnsw_ef_search = options.hnsw_ef_search;
  const int dim = k + (has_bias ? 1 : 0);
  std::vector<float> vectors, normalized;
  ItemVectors(model, 0, vectors, normalized);

  ScopedOmpThreads threads(options.build_threads);
  try {
    impl->ip = NewIndex(type, dim, options);
    impl->ip->add(n, vectors.data());
    impl->cosine = NewIndex(type, k, options);
    impl->cosine->add(n, normalized.data());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS index build failed: ", e.what()));
  }
  return ItemIndex(std::move(impl));
}

absl::StatusOr<ItemIndex> ItemIndex::Extend(const FactorModel& model, int build_threads) const {
  const int64_t old_items = num_items();
  if (!model.has_factors() || model.item_factors.rows() < old_items ||
      model.item_factors.cols() != impl_->factors || model.has_biases() != impl_->has_bias ||
      (model.has_biases() && model.item_bias.size() != model.item_factors.rows())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an index of ", old_items, " items with K = ", impl_->factors,
        " cannot be extended to a model of ", model.item_factors.rows(), " items with K = ",
        model.item_factors.cols(), impl_->has_bias ? " (it needs item biases)" : ""));
  }
  const auto* ip = dynamic_cast<const faiss::IndexHNSW*>(impl_->ip.get());
  const auto* cosine = dynamic_cast<const faiss::IndexHNSW*>(impl_->cosine.get());
  if (ip == nullptr || cosine == nullptr) {  // exact: a copy of the vectors, as cheap as this
    ItemIndexOptions o;
    o.type = IndexType::kExact;
    o.build_threads = build_threads;
    return Build(model, o);
  }
  std::vector<float> vectors, normalized;
  ItemVectors(model, old_items, vectors, normalized);
  const int64_t added = model.item_factors.rows() - old_items;
  auto impl = std::make_unique<Impl>();
  impl->factors = impl_->factors;
  impl->has_bias = impl_->has_bias;
  impl->hnsw_ef_search = impl_->hnsw_ef_search;
  impl->measured_recall = impl_->measured_recall;
  ScopedOmpThreads threads(build_threads);
  try {
    impl->ip = CopyAndAdd(*ip, added, vectors.data());
    impl->cosine = CopyAndAdd(*cosine, added, normalized.data());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS index extension failed: ", e.what()));
  }
  return ItemIndex(std::move(impl));
}

void ItemIndex::MakeQuery(std::span<const float> user, std::span<float> query) const {
  std::copy_n(user.begin(), impl_->factors, query.begin());
  if (impl_->has_bias) query[impl_->factors] = 1.0f;
}

absl::Status ItemIndex::Search(int64_t n, const float* queries, int k, float* scores,
                               int64_t* items, const ItemSearchParams& params) const {
  return impl_->DoSearch(*impl_->ip, n, queries, k, scores, items, params);
}

absl::Status ItemIndex::SearchSimilar(int64_t n, const float* queries, int k, float* scores,
                                      int64_t* items, const ItemSearchParams& params) const {
  if (n < 0) return absl::InvalidArgumentError("search needs n >= 0");
  std::vector<float> normalized(queries, queries + n * impl_->factors);
  NormalizeRows(normalized, n, impl_->factors);
  return impl_->DoSearch(*impl_->cosine, n, normalized.data(), k, scores, items, params);
}

absl::Status ItemIndex::Save(const std::string& path) const {
  faiss::VectorIOWriter writer;
  try {
    faiss::write_index(impl_->ip.get(), &writer);
    faiss::write_index(impl_->cosine.get(), &writer);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("FAISS could not serialise the index: ", e.what()));
  }
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.format_version = kFormatVersion;
  h.flags = impl_->has_bias ? kFlagHasBias : 0;
  h.factors = impl_->factors;
  h.num_items = num_items();
  h.payload_bytes = writer.data.size();
  h.payload_xxh64 = XXH64(writer.data.data(), writer.data.size(), 0);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&h), sizeof(h));
  out.write(reinterpret_cast<const char*>(writer.data.data()),
            static_cast<std::streamsize>(writer.data.size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("could not write item index ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ItemIndex>> LoadOrBuildItemIndex(
    const FactorModel& model, const std::string& version_dir) {
  if (!model.has_factors()) return std::shared_ptr<const ItemIndex>();
  const std::string path = version_dir + "/" + kItemIndexFileName;
  absl::StatusOr<ItemIndex> index = std::filesystem::exists(path)
                                        ? ItemIndex::Load(path)
                                        : ItemIndex::Build(model, ItemIndexOptions{});
  if (!index.ok()) return index.status();
  if (index->num_items() != model.num_items() || index->factors() != model.item_factors.cols() ||
      index->has_bias() != model.has_biases()) {
    return absl::InvalidArgumentError(
        absl::StrCat("item index ", path, " does not match the model beside it"));
  }
  return std::make_shared<const ItemIndex>(std::move(*index));
}

absl::StatusOr<ItemIndex> ItemIndex::Load(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("item index ", path, ": ", ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open item index ", path));
  Header h{};
  if (size < sizeof(h) || !in.read(reinterpret_cast<char*>(&h), sizeof(h))) {
    return absl::DataLossError(absl::StrCat("item index ", path, " is truncated (no header)"));
  }
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(absl::StrCat(path, " is not a recloop item index"));
  }
  if (h.format_version != kFormatVersion) {
    return absl::DataLossError(absl::StrCat("item index ", path, " has format version ",
                                            h.format_version, ", expected ", kFormatVersion));
  }
  if (h.payload_bytes != size - sizeof(h)) {
    return absl::DataLossError(absl::StrCat("item index ", path,
                                            " is truncated or padded: ", size - sizeof(h),
                                            " payload bytes, header says ", h.payload_bytes));
  }
  if (h.factors <= 0 || h.num_items <= 0 || (h.flags & ~kFlagHasBias) != 0) {
    return absl::DataLossError(absl::StrCat("item index ", path, " has a corrupted header"));
  }
  faiss::VectorIOReader reader;
  reader.data.resize(h.payload_bytes);
  if (!in.read(reinterpret_cast<char*>(reader.data.data()),
               static_cast<std::streamsize>(reader.data.size()))) {
    return absl::DataLossError(absl::StrCat("could not read item index ", path));
  }
  if (XXH64(reader.data.data(), reader.data.size(), 0) != h.payload_xxh64) {
    return absl::DataLossError(absl::StrCat("item index ", path, " fails its checksum"));
  }
  auto impl = std::make_unique<Impl>();
  impl->factors = h.factors;
  impl->has_bias = (h.flags & kFlagHasBias) != 0;
  try {
    impl->ip.reset(faiss::read_index(&reader));
    impl->cosine.reset(faiss::read_index(&reader));
    if (!MakeNative(impl->ip) || !MakeNative(impl->cosine)) {
      return absl::DataLossError(
          absl::StrCat("item index ", path, " holds a FAISS index type recloop does not write"));
    }
  } catch (const std::exception& e) {
    // Checksummed data FAISS cannot parse means a writer bug or a foreign file: still a Status.
    return absl::DataLossError(absl::StrCat("FAISS cannot read item index ", path, ": ", e.what()));
  }
  const int dim = h.factors + (impl->has_bias ? 1 : 0);
  if (impl->ip->d != dim || impl->cosine->d != h.factors || impl->ip->ntotal != h.num_items ||
      impl->cosine->ntotal != h.num_items || impl->ip->metric_type != faiss::METRIC_INNER_PRODUCT ||
      impl->cosine->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::DataLossError(
        absl::StrCat("item index ", path, " does not match its header (shape or metric)"));
  }
  if (const auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(impl->ip.get())) {
    impl->hnsw_ef_search = hnsw->hnsw.efSearch;
  } else {
    impl->hnsw_ef_search = ItemIndexOptions{}.hnsw_ef_search;
  }
  return ItemIndex(std::move(impl));
}

}  // namespace recloop
