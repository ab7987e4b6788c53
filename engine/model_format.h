// The model file format's metadata (internal to engine/: model_io.cc, model_arrays.cc and
// model_versions.cc use it): model.pb's 32-byte header and Protobuf payload, and the mapping
// between a FactorModel's parameters and lineage and pb::ModelMetadata. The format itself is
// described in model_io.h. Every function is pure or touches only the files it names, so all
// are thread-safe on different directories.
#ifndef RECLOOP_ENGINE_MODEL_FORMAT_H_
#define RECLOOP_ENGINE_MODEL_FORMAT_H_

#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/model.pb.h"

namespace recloop::model_internal {

namespace fs = std::filesystem;

inline constexpr char kMetadataFile[] = "model.pb";
inline constexpr size_t kHeaderBytes = 32;

// XXH64 (seed 0) of `bytes` bytes at `data`: the checksum of every file of a version.
inline uint64_t Hash(const void* data, size_t bytes) { return XXH64(data, bytes, 0); }

// `n` elements at `data` as bytes.
template <typename T>
std::span<const char> AsBytes(const T* data, size_t n) {
  return {reinterpret_cast<const char*>(data), n * sizeof(T)};
}

// Everything of `m`'s metadata but the version-specific fields and the file list; the creation
// time is now.
pb::ModelMetadata MetadataOf(const FactorModel& m);

// The parameters, value range and lineage of `meta` into `m`. Returns DataLoss naming
// `meta_path` for an unknown algorithm or feedback.
absl::Status ModelFromMetadata(const pb::ModelMetadata& meta, const std::string& meta_path,
                               FactorModel* m);

// InvalidArgument if the shapes of `m`'s parts disagree (`streamed_seen`: the seen matrix comes
// from SaveModelOptions::seen_source, so m.seen must be empty).
absl::Status CheckShapes(const FactorModel& m, bool streamed_seen);

// Writes dir/model.pb (header and `meta`) and fsyncs it. Internal naming the file on failure.
absl::Status WriteMetadata(const fs::path& dir, const pb::ModelMetadata& meta);

// Reads and verifies dir/model.pb: NotFound if missing, FailedPrecondition for another format
// version, DataLoss for a truncated or corrupted file; every message names the file.
absl::StatusOr<pb::ModelMetadata> ReadMetadata(const fs::path& dir);

}  // namespace recloop::model_internal

#endif  // RECLOOP_ENGINE_MODEL_FORMAT_H_
