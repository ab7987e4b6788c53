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
#include <optional>
#include <utility>
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
#include "nlohmann/json.hpp"

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
using model_internal::WriteMetadata;

namespace {

// Writes `head` as a complete model directory version_tmp/rating_head: its arrays, then its
// model.pb, then the directory, each fsync'ed (the version's own fsync covers the entry).
absl::Status WriteRatingHead(const FactorModel& head, const fs::path& version_tmp) {
  const fs::path dir = version_tmp / kRatingHeadDir;
  std::error_code ec;
  if (!fs::create_directory(dir, ec) || ec) {
    return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", ec.message()));
  }
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, WriteArrays(head, dir, SaveModelOptions{}));
  RETURN_IF_ERROR(WriteMetadata(dir, meta));
  return FsyncPath(dir.string());
}

// Loads the model in the version directory `dir` (holding model.pb).
absl::StatusOr<FactorModel> LoadModelDir(const fs::path& dir) {
  ASSIGN_OR_RETURN(const pb::ModelMetadata meta, ReadMetadata(dir));
  const std::string meta_path = (dir / kMetadataFile).string();
  FactorModel m;
  RETURN_IF_ERROR(ModelFromMetadata(meta, meta_path, &m));
  RETURN_IF_ERROR(ReadArrays(dir, meta, meta_path, &m));
  return m;
}

// The rating head directory of the version directory `dir`, or nullopt if it has none.
std::optional<fs::path> RatingHeadDir(const std::string& dir) {
  const fs::path head = fs::path(dir) / kRatingHeadDir;
  std::error_code ec;
  if (!fs::exists(head, ec)) return std::nullopt;
  return head;
}

// A missing model.pb in a rating_head/ that exists is a damaged version, not an absent model.
absl::Status AsDataLoss(absl::Status s) {
  if (!absl::IsNotFound(s)) return s;
  return absl::DataLossError(s.message());
}

// The metadata in `dir` as Protobuf text format, or JSON if `json` (no trailing newline).
absl::StatusOr<std::string> PrintMetadata(const std::string& dir, bool json) {
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
  return out;
}

// The model's JSON metadata `model` with the key "rating_head" holding `head`'s: one object.
absl::StatusOr<std::string> JoinJson(const std::string& model, const std::string& head,
                                     const std::string& dir) {
  try {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(model);
    j["rating_head"] = nlohmann::ordered_json::parse(head);
    return j.dump(2);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(dir, ": cannot join the metadata: ", e.what()));
  }
}

}  // namespace

std::string LibraryVersion() { return RECLOOP_VERSION; }

absl::StatusOr<SavedModel> SaveModel(const FactorModel& model, const std::string& models_dir,
                                     const SaveModelOptions& options) {
  RETURN_IF_ERROR(CheckShapes(model, static_cast<bool>(options.seen_source)));
  if (options.rating_head != nullptr) {
    if (absl::Status s = CheckShapes(*options.rating_head, false); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("rating head: ", s.message()));
    }
  }
  const fs::path dir(models_dir);
  ASSIGN_OR_RETURN(const fs::path tmp, CreateTempVersionDir(dir));
  // Removes the temporary directory on every error path.
  auto fail = [&tmp](absl::Status s) {
    RemoveTempVersionDir(tmp);
    return s;
  };
  auto meta = WriteArrays(model, tmp, options);
  if (!meta.ok()) return fail(meta.status());
  if (options.rating_head != nullptr) {
    if (absl::Status s = WriteRatingHead(*options.rating_head, tmp); !s.ok()) return fail(s);
  }
  if (options.write_extra_files) {
    if (absl::Status s = options.write_extra_files(tmp.string()); !s.ok()) return fail(s);
  }
  return PublishVersion(dir, tmp, options.make_current, &*meta);
}

absl::StatusOr<FactorModel> LoadModel(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string dir, ResolveModelDir(path));
  return LoadModelDir(dir);
}

absl::StatusOr<std::optional<FactorModel>> LoadRatingHead(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string dir, ResolveModelDir(path));
  const std::optional<fs::path> head = RatingHeadDir(dir);
  if (!head) return std::nullopt;
  auto model = LoadModelDir(*head);
  if (!model.ok()) return AsDataLoss(model.status());
  return std::optional<FactorModel>(*std::move(model));
}

absl::StatusOr<std::string> DescribeModel(const std::string& path, bool json) {
  ASSIGN_OR_RETURN(const std::string dir, ResolveModelDir(path));
  ASSIGN_OR_RETURN(std::string out, PrintMetadata(dir, json));
  const std::optional<fs::path> head_dir = RatingHeadDir(dir);
  std::string head;
  if (head_dir) {
    auto printed = PrintMetadata(head_dir->string(), json);
    if (!printed.ok()) return AsDataLoss(printed.status());
    head = *std::move(printed);
  }
  // Text mode says which version `current` resolved to; JSON must stay one parseable object.
  if (!json) {
    if (!head_dir) return absl::StrCat("# ", dir, "\n", out);
    return absl::StrCat("# ", dir, "\n", out, "\n# rating_head: ", head_dir->string(), "\n", head);
  }
  if (!head_dir) return out + "\n";
  ASSIGN_OR_RETURN(std::string joined, JoinJson(out, head, dir));
  return joined + "\n";
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
