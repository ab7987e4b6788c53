// ItemIndex: the nearest-neighbour index over a factor model's item embeddings, answering "which
// items score highest for this user vector" (inner product, model scores) and "which items are
// most like this one" (cosine). Wraps FAISS; FAISS types never appear here (pimpl), so that only
// engine/item_index.cc compiles against FAISS headers.
//
// Scores. For an explicit model with biases, the predicted rating is
//   r(u, i) = mu + b_u + p_u . q_i + b_i.
// mu + b_u is constant for one user, so ranking by r equals ranking by [p_u, 1] . [q_i, b_i]:
// the inner-product index stores the augmented item vectors [q_i, b_i] (dim() = K + 1) and a
// query is [p_u, 1] (see MakeQuery). Implicit models store q_i as is (dim() = K).
//
// Matrices are row-major float32 throughout; a query batch of n queries is n * dim() floats.
#ifndef RECLOOP_ENGINE_ITEM_INDEX_H_
#define RECLOOP_ENGINE_ITEM_INDEX_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"

namespace recloop {

enum class IndexType {
  kAuto,   // exact search unless HNSW, with a beam chosen by measured recall, is cheaper
           // (ItemIndexOptions::hnsw_min_items, auto_min_recall; engine/index_calibration.h)
  kExact,  // brute-force inner product (FAISS IndexFlatIP): exact, O(items * K) per query
  kHnsw,   // HNSW graph (FAISS IndexHNSWFlat, inner product): approximate, sub-linear
};

std::string_view ToString(IndexType t);
// Parses "auto", "exact" (also "flat") or "hnsw".
absl::StatusOr<IndexType> ParseIndexType(std::string_view s);

// File name of the item index inside a model version directory (written by `recloop train`).
inline constexpr char kItemIndexFileName[] = "items.faiss";

struct ItemIndexOptions {
  // Which index to build. kAuto builds exact search below hnsw_min_items items; from there on
  // it builds HNSW and picks the smallest beam (efSearch) whose recall@10 against exact search,
  // measured on a sample of the model's own users, reaches auto_min_recall, falling back to
  // exact search when no beam up to 512 does or when that beam would score about as many items
  // as exact search (engine/index_calibration.h).
  IndexType type = IndexType::kAuto;
  // Catalogue size from which kAuto considers HNSW. An exact query costs about 20 ns per item
  // at K = 64 (2.1 ms at 100K items), an HNSW query about 60-120 us whatever the size
  // (BENCHMARKS.md, "Query latency: exact against HNSW"): HNSW wins from about 6K items, and
  // below 20K exact search costs at most ~0.4 ms and needs no recall caveat or graph build.
  int32_t hnsw_min_items = 20'000;
  // kAuto: the recall@10 against exact search an HNSW beam must reach on the sample (0.97:
  // a margin above the 0.95 that serving promises, for users outside the sample).
  double auto_min_recall = 0.97;
  // HNSW graph degree (FAISS's M). Memory is ~ M * 8 bytes per item on top of the vectors.
  // 16 beat 32 on trained K = 64 models in recall@10 at the same efSearch, query time and build
  // time (BENCHMARKS.md, the table of `--hnsw-m 16` against 32, has the figures).
  int hnsw_m = 16;
  // Beam width while building the graph; higher builds slower and gives a better graph.
  int hnsw_ef_construction = 100;
  // Default beam width while searching (raised to k when k is larger). Higher is slower and
  // recalls more; see item_index_test for the measured recall.
  int hnsw_ef_search = 128;
  // OpenMP threads used to build the index (HNSW insertion is parallel). 0 = OpenMP's default.
  int build_threads = 0;
  // Inner products computed by recloop's own kernels (Eigen, compiled with this build's -march)
  // instead of libfaiss's: Debian packages FAISS as a generic x86-64 build whose distance code
  // has no AVX2. The index and its file are plain FAISS either way; false exists to measure the
  // difference (bench/query_bench). Load always uses the native kernels.
  bool native_kernels = true;
};

// Per-call search settings.
struct ItemSearchParams {
  // OpenMP threads for this call. The default of 1 is the serving setting: the server runs one
  // query per thread, and letting each spawn an OpenMP team oversubscribes the cores and fights
  // oneTBB (FAISS issues 2731, 2823). Batch jobs may raise it; 0 = OpenMP's default.
  int omp_threads = 1;
  // HNSW beam width for this call; 0 = the index's default. Ignored by exact indexes.
  int ef_search = 0;
  // HNSW only: walk the graph with recloop's search loop (prefetches the vectors of a node's
  // unvisited neighbours before scoring them, binary heaps) rather than FAISS 1.7.3's (one
  // distance at a time, linear-scan heaps). The same graph and the same beam either way; false
  // exists to measure the difference (bench/index_bench). Needs native kernels.
  bool native_hnsw_search = true;
};

// Thread safety: immutable after Build/Load. Concurrent const calls (Search, SearchSimilar,
// Save) from any number of threads are safe; each sets the OpenMP thread count of its own
// calling thread only.
class ItemIndex {
 public:
  // Builds both indexes (inner product over the model's, optionally bias-augmented, item
  // vectors; cosine over the L2-normalised item factors) from model.item_factors.
  // Errors: InvalidArgument if the model has no factors or no items, if an explicit model's
  // bias vector does not match, or if an option is out of range; Internal if FAISS fails.
  static absl::StatusOr<ItemIndex> Build(const FactorModel& model,
                                         const ItemIndexOptions& options = {});

  // This index with the items of `model` past num_items() added (model's first num_items()
  // items must be the ones indexed, as after AppendItems). HNSW: a copy of the graph with the
  // new items linked in (FAISS's incremental add; the old links are kept, the default beam and
  // its measured recall too), at the cost of copying the graph instead of rebuilding it. Exact:
  // built anew (a copy of the vectors). Errors: InvalidArgument if the model does not extend
  // this index (fewer items, another K, biases or not); Internal if FAISS fails.
  absl::StatusOr<ItemIndex> Extend(const FactorModel& model, int build_threads = 1) const;

  // Reads an index written by Save. Errors: NotFound if the file is missing; DataLoss if it is
  // truncated, fails its checksum or FAISS cannot parse it (never a crash on a corrupted file).
  // The caller checks num_items()/factors() against its model (Recommender::Create does).
  static absl::StatusOr<ItemIndex> Load(const std::string& path);

  // Writes the index to `path` (one file: a header with a checksum, then both FAISS indexes).
  // The file is written in place; callers wanting atomicity write to a temporary name and rename.
  // Errors: Internal/PermissionDenied-like errors from the file system or FAISS as a Status.
  absl::Status Save(const std::string& path) const;

  ItemIndex(ItemIndex&&) noexcept;
  ItemIndex& operator=(ItemIndex&&) noexcept;
  ~ItemIndex();

  int32_t num_items() const;
  // Latent factors K of the model the index was built from.
  int factors() const;
  // Width of a score query: K + 1 when biases are folded in, else K.
  int dim() const;
  // True if item biases are folded into the vectors (explicit models).
  bool has_bias() const;
  // The type that was actually built (never kAuto).
  IndexType type() const;
  // HNSW: the default beam width of a search (a search returns up to this many results for the
  // price of one); 0 for an exact index.
  int default_ef_search() const;
  // HNSW: sets the default beam of later searches, and the one Save writes, with the recall@10
  // measured at it (measured_recall). Not thread-safe: for the builder, before the index is
  // shared. No effect on an exact index.
  void SetDefaultEfSearch(int ef, double measured_recall = -1);
  // The recall@10 against exact search that kAuto measured for the default beam (built by
  // engine/index_calibration.h); -1 when not measured (other types, or a loaded index).
  double measured_recall() const;

  // Writes the score query for user factors `user` (size factors()) into `query` (size dim()).
  void MakeQuery(std::span<const float> user, std::span<float> query) const;

  // Inner-product search: for each of the n queries (row-major, n * dim() floats), the k items
  // with the highest query . item, best first. Writes n * k scores into `scores` and n * k item
  // indices into `items`; when fewer than k items exist (or HNSW finds fewer) the tail holds
  // item -1 and score -infinity. The score is query . [q_i, b_i] (add mu + b_u for a rating).
  // Requires n >= 0, k >= 1 and the sizes above. Errors: InvalidArgument on bad sizes;
  // Internal if FAISS throws.
  absl::Status Search(int64_t n, const float* queries, int k, float* scores, int64_t* items,
                      const ItemSearchParams& params = {}) const;

  // Cosine search: like Search over the L2-normalised item factors. `queries` are n * factors()
  // floats and need not be normalised (they are normalised here; a zero query scores 0
  // everywhere). Scores are cosine similarities in [-1, 1]. Errors as Search.
  absl::Status SearchSimilar(int64_t n, const float* queries, int k, float* scores, int64_t* items,
                             const ItemSearchParams& params = {}) const;

 private:
  struct Impl;
  explicit ItemIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The item index of a model version directory: its saved kItemIndexFileName when there is one
// (checked against the model), else an exact index built now (cheap: a copy of the item
// vectors). Null for a model without factors. Errors: Load's or Build's, or InvalidArgument if
// the saved index does not match the model.
absl::StatusOr<std::shared_ptr<const ItemIndex>> LoadOrBuildItemIndex(
    const FactorModel& model, const std::string& version_dir);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_ITEM_INDEX_H_
