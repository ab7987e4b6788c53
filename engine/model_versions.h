// Version directories of a models directory (internal to engine/: SaveModel in model_io.cc
// claims a version with it; the public ListVersions, SetCurrentVersion, PruneVersions and
// ResolveModelDir of model_io.h are defined beside these). Layout and crash-safety are
// described in model_io.h.
#ifndef RECLOOP_ENGINE_MODEL_VERSIONS_H_
#define RECLOOP_ENGINE_MODEL_VERSIONS_H_

#include <filesystem>

#include "absl/status/statusor.h"
#include "engine/model.pb.h"
#include "engine/model_io.h"

namespace recloop::model_internal {

namespace fs = std::filesystem;

// Creates `dir` if missing and a fresh hidden temporary directory in it, returned. Internal
// naming the directory on failure.
absl::StatusOr<fs::path> CreateTempVersionDir(const fs::path& dir);

// Removes a temporary version directory and everything in it, ignoring errors.
void RemoveTempVersionDir(const fs::path& tmp);

// Makes the complete files in `tmp` the next version of `dir`: records the version name in
// `meta`, writes model.pb, fsyncs and renames `tmp` (trying the next number if a concurrent
// writer took it), fsyncs `dir` and, if `make_current`, swaps `current`. On an error before the
// rename `tmp` is removed. Errors: ResourceExhausted after v999999, Internal naming the path.
absl::StatusOr<SavedModel> PublishVersion(const fs::path& dir, const fs::path& tmp,
                                          bool make_current, pb::ModelMetadata* meta);

}  // namespace recloop::model_internal

#endif  // RECLOOP_ENGINE_MODEL_VERSIONS_H_
