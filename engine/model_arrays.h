// The array files of a model version (internal to engine/: model_io.cc uses them): factor
// matrices, biases, popularity, the seen matrix and the ID lists, each a plain little-endian
// array checksummed in the metadata (format in model_io.h). Thread-safe on different
// directories.
#ifndef RECLOOP_ENGINE_MODEL_ARRAYS_H_
#define RECLOOP_ENGINE_MODEL_ARRAYS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/model.pb.h"
#include "engine/model_format.h"
#include "engine/model_io.h"

namespace recloop::model_internal {

// Writes every file of `m` into `dir` (which exists and is empty; each file fsync'ed) and
// returns the metadata listing them (without the version name: that is chosen at rename time,
// and model.pb is written last). The seen matrix comes from options.seen_source when set.
// Errors: InvalidArgument for an ID with a newline or a bad seen block; Internal naming the file.
absl::StatusOr<pb::ModelMetadata> WriteArrays(const FactorModel& m, const fs::path& dir,
                                              const SaveModelOptions& options);

// Reads, verifies and copies the arrays that `meta` lists from `dir` into `m`, whose params
// are already set (ModelFromMetadata). Errors: DataLoss naming the file for a missing,
// truncated, corrupted or inconsistent one (`meta_path` names model.pb).
absl::Status ReadArrays(const fs::path& dir, const pb::ModelMetadata& meta,
                        const std::string& meta_path, FactorModel* m);

}  // namespace recloop::model_internal

#endif  // RECLOOP_ENGINE_MODEL_ARRAYS_H_
