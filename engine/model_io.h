// Saving and loading a FactorModel as a directory: model.json (format version, hyper-parameters,
// shapes), the arrays as raw little-endian files (*.f32, *.i32, *.i64) and the external IDs one
// per line (users.txt, items.txt).
#ifndef RECLOOP_ENGINE_MODEL_IO_H_
#define RECLOOP_ENGINE_MODEL_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"

namespace recloop {

inline constexpr int kModelFormatVersion = 1;

// Writes `model` into directory `dir` (created if missing; existing model files are replaced).
// Returns an error naming the file that could not be written.
absl::Status SaveModel(const FactorModel& model, const std::string& dir);

// Reads a model written by SaveModel. Returns an error naming the file on a missing, truncated
// or inconsistent file, or an unsupported format version.
absl::StatusOr<FactorModel> LoadModel(const std::string& dir);

}  // namespace recloop

#endif  // RECLOOP_ENGINE_MODEL_IO_H_
