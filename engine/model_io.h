// Saving and loading a FactorModel as a versioned model directory.
//
// Layout of a models directory MODELS/:
//   MODELS/v000001/            one complete, immutable model version
//   MODELS/v000002/
//   MODELS/current -> v000002  relative symlink to the newest complete version
//   MODELS/.tmp-...            a version being written (or left by a crash): always ignored
//
// Versions are "v" followed by at least six decimal digits: the next version is one more than
// the highest existing one, so names sort in creation order (lexicographically up to v999999,
// after which SaveModel refuses). A version is written into a hidden temporary directory, every
// file and the directory are fsync'ed, and the directory is renamed to its version name (rename
// fails if another writer took the name; SaveModel then moves on to the next number). Only then
// is `current` swapped: a symlink is created under a temporary name and rename(2)d over
// `current`, and MODELS/ is fsync'ed. A crash at any point leaves `current` pointing at the
// previous complete version; a leftover .tmp-* directory is ignored (delete it at leisure).
//
// A version directory holds:
//   model.pb     header + Protobuf ModelMetadata (engine/model.proto): lineage, hyper-parameters,
//                shapes and the XXH64 checksum of every other file. The header is 32 bytes,
//                little-endian: magic "RCLMODEL", uint32 format version, uint32 reserved (0),
//                uint64 payload length, uint64 XXH64 of the payload.
//   user_factors.f32, item_factors.f32   row-major float32 [rows, factors] (ALS models only)
//   user_bias.f32, item_bias.f32         float32 vectors (explicit ALS only)
//   item_popularity.f32                  float32 [items]
//   seen_indptr.i64, seen_indices.i32, seen_values.f32   the seen-items CSR matrix
//   users.txt, items.txt                 external IDs, one per line, line i = dense index i
//   rating_head/  optional (SaveModelOptions::rating_head): a second, complete model directory
//                 in the same format (its own model.pb and checksummed arrays, no item index):
//                 the rating predictor served beside the ranking model (LoadRatingHead). It is
//                 written and fsync'ed inside the temporary version, so it is published with
//                 the version atomically; its model.pb records no version name.
// Every array file is a plain little-endian array with no header, so it can be mmap'ed and used
// in place. LoadModel currently maps each file, verifies its checksum and copies it into the
// FactorModel's Eigen matrices and vectors (so the model owns its memory and the mapping is
// released); a zero-copy load is a later step.
//
// Thread-safety: the functions are safe to call concurrently on different directories. Two
// processes saving into the same models directory get distinct versions; `current` ends up at
// whichever swapped last. Loading while another process saves is safe: a reader sees either the
// old or the new `current`, each complete.
#ifndef RECLOOP_ENGINE_MODEL_IO_H_
#define RECLOOP_ENGINE_MODEL_IO_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"

namespace recloop {

// Version 1 was model.json + raw arrays without checksums; it is no longer readable.
inline constexpr uint32_t kModelFormatVersion = 2;

// The subdirectory of a version that holds its rating head, if it has one.
inline constexpr char kRatingHeadDir[] = "rating_head";

// The recloop version written into every model (the CMake project version).
std::string LibraryVersion();

// Consecutive rows of a seen matrix (SaveModelOptions::seen_source).
struct SeenRows {
  std::vector<int64_t> row_sizes;  // entries in each row
  std::vector<int32_t> indices;    // the item of each entry, row by row (sum of row_sizes)
  std::vector<float> values;       // the value of each entry
};

struct SaveModelOptions {
  // Called with the temporary version directory after the model's files are written and before
  // the directory is fsync'ed and renamed into place, so that callers can add files (e.g. a
  // search index) to the same atomic version. Files it writes should be fsync'ed by it. An
  // error aborts the save (the temporary directory is removed). Default: none.
  std::function<absl::Status(const std::string& version_dir)> write_extra_files;
  // Point `current` at the new version. False keeps it on disk without serving it (e.g. a
  // retrained model the promotion gate refused).
  bool make_current = true;
  // For a model whose seen matrix is not in one place (the distributed trainer's processes each
  // hold their users' rows): when set, model.seen must be empty (0 x 0), and the seen files are
  // written from the blocks this returns, in row order, until model.num_users() rows have come
  // (one at a time in memory). A block that does not fit the model, an early empty block or an
  // error from the source aborts the save. Default: none (model.seen is written).
  std::function<absl::StatusOr<SeenRows>()> seen_source;
  // A rating predictor (e.g. BPMF) to keep beside the model in VERSION/rating_head/ (layout
  // above); it must outlive the call. Its shapes are checked as the model's (InvalidArgument).
  // Default: none.
  const FactorModel* rating_head = nullptr;
};

struct SavedModel {
  std::string version;  // e.g. "v000003"
  std::string path;     // models_dir/version
};

// Writes `model` as a new version of `models_dir` (created if missing) and points
// `models_dir/current` at it, as described above. model.lineage's data, test, split, counts and
// metrics are recorded; its version, creation time and library version are assigned here.
// Returns InvalidArgument if the model's shapes are inconsistent or an external ID contains a
// newline, ResourceExhausted after v999999, and Internal naming the file or directory on an I/O
// failure. `current` is unchanged on every error; the partial version is removed, except when
// the failure comes after the complete version was renamed into place (fsync of models_dir or
// the swap of `current`), when the complete version stays, unreferenced.
absl::StatusOr<SavedModel> SaveModel(const FactorModel& model, const std::string& models_dir,
                                     const SaveModelOptions& options = {});

// The version directory that `path` designates: `path` itself if it holds model.pb, else the
// target of `path/current`. Returns NotFound if neither exists.
absl::StatusOr<std::string> ResolveModelDir(const std::string& path);

// The complete versions of `models_dir` (those holding model.pb), oldest first; empty if the
// directory does not exist.
absl::StatusOr<std::vector<std::string>> ListVersions(const std::string& models_dir);

// Points `models_dir/current` at `version` atomically (as SaveModel does). Errors: NotFound if
// there is no such complete version; Internal naming the path on an I/O failure.
absl::Status SetCurrentVersion(const std::string& models_dir, const std::string& version);

// Removes the oldest versions of `models_dir` so that `keep` remain, never the current one.
// Returns the versions removed. Errors: InvalidArgument for keep < 1; Internal naming the path.
absl::StatusOr<std::vector<std::string>> PruneVersions(const std::string& models_dir, int keep);

// Loads the model at `path` (a models directory, via its `current`, or one version directory),
// with model.lineage filled from the metadata. Verifies the header, format version, shapes,
// file sizes and checksums, and the structure of the seen matrix. Returns NotFound if there is
// no model, FailedPrecondition for an unsupported format version, and DataLoss for a truncated
// or corrupted file; every message names the file.
absl::StatusOr<FactorModel> LoadModel(const std::string& path);

// The rating head saved with the model at `path` (as for LoadModel): std::nullopt when the
// version has no rating_head/. Errors as for LoadModel when it has one that cannot be loaded
// (DataLoss naming the file, also for a missing rating_head/model.pb).
absl::StatusOr<std::optional<FactorModel>> LoadRatingHead(const std::string& path);

// The metadata of the model at `path` (as for LoadModel) without loading its arrays: Protobuf
// text format, or JSON (field names as in engine/model.proto) if `json`. With a rating head,
// text mode appends the head's metadata under a "# rating_head: DIR" line, and JSON mode (still
// one object) adds the key "rating_head" holding the head's metadata object (absent without a
// head). Verifies the metadata files' headers and checksums only. Errors as for LoadModel.
absl::StatusOr<std::string> DescribeModel(const std::string& path, bool json);

// Size and XXH64 (seed 0) of a file's content, read in 1 MiB blocks. Leaves path and rows
// empty. Returns NotFound / Internal naming the file if it cannot be read.
absl::StatusOr<DataFingerprint> FingerprintFile(const std::string& path);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_MODEL_IO_H_
