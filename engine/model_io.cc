// Saving and loading a model version (model_io.h): SaveModel and LoadModel put together the
// metadata (model_format.cc), the array files (model_arrays.cc) and the version directories
// (model_versions.cc).
#include "engine/model_io.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <exception>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/posix_file.h"
#include "engine/model.pb.h"
#include "engine/model_arrays.h"
#include "engine/model_format.h"
#include "engine/model_versions.h"
#include "engine/status_macros.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

#ifndef RECLOOP_VERSION
#define RECLOOP_VERSION "unknown"
#endif

namespace recloop {

namespace fs = std::filesystem;
using model_internal::CheckShapes;
using model_internal::CreateTempVersionDir;
using model_internal::kMetadataFile;
using model_internal::ModelFromMetadata;
using model_internal::PublishVersion;
using model_internal::ReadArrays;
using model_internal::ReadMetadata;
using model_internal::RemoveTempVersionDir;
using model_internal::WriteArrays;

std::string LibraryVersion() { return RECLOOP_VERSION; }

absl::StatusOr<SavedModel> SaveModel(const FactorModel& model, const std::string& models_dir,
                                     const SaveModelOptions& options) {
  RETURN_IF_ERROR(CheckShapes(model, static_cast<bool>(options.seen_source)));
  const fs::path dir(models_dir);
  ASSIGN_OR_RETURN(const fs::path tmp, CreateTempVersionDir(dir));
  // Removes the temporary directory on every error path.
  auto fail = [&tmp](absl::Status s) {
    RemoveTempVersionDir(tmp);
    return s;
  };
  auto meta = WriteArrays(model, tmp, options);
  if (!meta.ok()) return fail(meta.status());
  if (options.write_extra_files) {
    if (absl::Status s = options.write_extra_files(tmp.string()); !s.ok()) return fail(s);
  }
  return PublishVersion(dir, tmp, options.make_current, &*meta);
}

absl::StatusOr<FactorModel> LoadModel(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string dir_name, ResolveModelDir(path));
  const fs::path dir(dir_name);
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, ReadMetadata(dir));
  const std::string meta_path = (dir / kMetadataFile).string();
  FactorModel m;
  RETURN_IF_ERROR(ModelFromMetadata(meta, meta_path, &m));
  RETURN_IF_ERROR(ReadArrays(dir, meta, meta_path, &m));
  return m;
}

absl::StatusOr<std::string> DescribeModel(const std::string& path, bool json) {
  ASSIGN_OR_RETURN(const std::string dir, ResolveModelDir(path));
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, ReadMetadata(dir));
  std::string out;
  try {
    if (json) {
      google::protobuf::util::JsonPrintOptions o;
      o.add_whitespace = true;
      o.always_print_primitive_fields = true;
      o.preserve_proto_field_names = true;
      const auto status = google::protobuf::util::MessageToJsonString(meta, &out, o);
      if (!status.ok()) {
        return absl::InternalError(
            absl::StrCat(dir, "/", kMetadataFile, ": cannot print as JSON: ", status.ToString()));
      }
    } else if (!google::protobuf::TextFormat::PrintToString(meta, &out)) {
      return absl::InternalError(absl::StrCat(dir, "/", kMetadataFile, ": cannot print"));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(dir, "/", kMetadataFile, ": ", e.what()));
  }
  // Text mode says which version `current` resolved to; JSON must stay one parseable object.
  return json ? out + "\n" : absl::StrCat("# ", dir, "\n", out);
}

absl::StatusOr<DataFingerprint> FingerprintFile(const std::string& path) {
  const ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": missing"));
    return absl::InternalError(ErrnoMessage(path, err));
  }
  XXH64_state_t* state = XXH64_createState();
  if (state == nullptr) return absl::ResourceExhaustedError("XXH64_createState failed");
  XXH64_reset(state, 0);
  std::vector<char> buf(1 << 20);
  DataFingerprint f;
  absl::Status status;
  while (true) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      status = absl::InternalError(ErrnoMessage(absl::StrCat(path, ": read"), errno));
      break;
    }
    if (n == 0) break;
    XXH64_update(state, buf.data(), static_cast<size_t>(n));
    f.bytes += n;
  }
  f.content_xxh64 = XXH64_digest(state);
  XXH64_freeState(state);
  if (!status.ok()) return status;
  return f;
}

}  // namespace recloop
