// The version directories of a models directory: numbering, claiming a name, `current`,
// listing and pruning (layout and crash-safety in model_io.h).
#include "engine/model_versions.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/posix_file.h"
#include "engine/model_format.h"
#include "engine/status_macros.h"

namespace recloop {
namespace model_internal {
namespace {

constexpr char kCurrent[] = "current";
constexpr char kTmpPrefix[] = ".tmp-";
constexpr int kVersionDigits = 6;
constexpr int64_t kMaxVersion = 999999;

// The numbers of the entries of `dir` named v<digits>, ascending.
absl::StatusOr<std::vector<int64_t>> VersionNumbers(const fs::path& dir) {
  std::vector<int64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() < 1 + kVersionDigits || name[0] != 'v' || name.size() > 12) continue;
    int64_t n = 0;
    bool digits = true;
    for (size_t i = 1; i < name.size() && digits; ++i) {
      digits = name[i] >= '0' && name[i] <= '9';
      n = n * 10 + (name[i] - '0');
    }
    if (digits) out.push_back(n);
  }
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::sort(out.begin(), out.end());
  return out;
}

// Highest version number among the entries of `dir` named v<digits>; 0 if none.
absl::StatusOr<int64_t> HighestVersion(const fs::path& dir) {
  ASSIGN_OR_RETURN(const std::vector<int64_t> numbers, VersionNumbers(dir));
  return numbers.empty() ? 0 : numbers.back();
}

std::string VersionName(int64_t n) {
  std::string digits = std::to_string(n);
  if (digits.size() < kVersionDigits) digits.insert(0, kVersionDigits - digits.size(), '0');
  return "v" + digits;
}

std::string RandomSuffix() {
  std::random_device rd;
  return absl::StrCat(::getpid(), "-", rd(), rd());
}

// Points dir/current at `version` atomically.
absl::Status SwapCurrent(const fs::path& dir, const std::string& version) {
  const fs::path tmp = dir / absl::StrCat(kTmpPrefix, "current-", RandomSuffix());
  return ReplaceSymlink(version, (dir / kCurrent).string(), tmp.string());
}

}  // namespace

absl::StatusOr<fs::path> CreateTempVersionDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": ", ec.message()));
  const fs::path tmp = dir / absl::StrCat(kTmpPrefix, RandomSuffix());
  if (!fs::create_directory(tmp, ec) || ec) {
    return absl::InternalError(absl::StrCat(tmp.string(), ": cannot create: ", ec.message()));
  }
  return tmp;
}

void RemoveTempVersionDir(const fs::path& tmp) {
  std::error_code ignored;
  fs::remove_all(tmp, ignored);
}

absl::StatusOr<SavedModel> PublishVersion(const fs::path& dir, const fs::path& tmp,
                                          bool make_current, pb::ModelMetadata* meta) {
  auto fail = [&tmp](absl::Status s) {
    RemoveTempVersionDir(tmp);
    return s;
  };
  // model.pb records the version name, so it is rewritten if the first name choice is taken by
  // a concurrent writer. Each attempt: write model.pb, fsync the directory, rename.
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto highest = HighestVersion(dir);
    if (!highest.ok()) return fail(highest.status());
    if (*highest >= kMaxVersion) {
      return fail(absl::ResourceExhaustedError(
          absl::StrCat(dir.string(), ": version ", kMaxVersion, " reached; start a new directory")));
    }
    const std::string version = VersionName(*highest + 1);
    meta->set_model_version(version);
    if (absl::Status s = WriteMetadata(tmp, *meta); !s.ok()) return fail(s);
    if (absl::Status s = FsyncPath(tmp.string()); !s.ok()) return fail(s);
    const fs::path final_dir = dir / version;
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
      const int err = errno;
      if (err == EEXIST || err == ENOTEMPTY) continue;  // another writer took this version
      return fail(
          absl::InternalError(ErrnoMessage(absl::StrCat(final_dir.string(), ": rename"), err)));
    }
    RETURN_IF_ERROR(FsyncPath(dir.string()));
    if (make_current) RETURN_IF_ERROR(SwapCurrent(dir, version));
    return SavedModel{version, final_dir.string()};
  }
  return fail(absl::InternalError(
      absl::StrCat(dir.string(), ": could not claim a version name after 100 attempts")));
}

}  // namespace model_internal

using model_internal::kCurrent;
using model_internal::kMetadataFile;
using model_internal::SwapCurrent;
using model_internal::VersionName;
using model_internal::VersionNumbers;
namespace fs = std::filesystem;

absl::StatusOr<std::vector<std::string>> ListVersions(const std::string& models_dir) {
  std::error_code ec;
  if (!fs::is_directory(models_dir, ec)) return std::vector<std::string>{};
  ASSIGN_OR_RETURN(const std::vector<int64_t> numbers, VersionNumbers(models_dir));
  std::vector<std::string> out;
  for (const int64_t n : numbers) {
    const std::string name = VersionName(n);
    if (fs::exists(fs::path(models_dir) / name / kMetadataFile, ec)) out.push_back(name);
  }
  return out;
}

absl::Status SetCurrentVersion(const std::string& models_dir, const std::string& version) {
  std::error_code ec;
  if (version.find('/') != std::string::npos ||
      !fs::exists(fs::path(models_dir) / version / kMetadataFile, ec)) {
    return absl::NotFoundError(absl::StrCat(models_dir, ": no model version '", version, "'"));
  }
  return SwapCurrent(models_dir, version);
}

absl::StatusOr<std::vector<std::string>> PruneVersions(const std::string& models_dir, int keep) {
  if (keep < 1) return absl::InvalidArgumentError("keep at least one version");
  ASSIGN_OR_RETURN(const std::vector<std::string> versions, ListVersions(models_dir));
  std::string current;
  if (auto dir = ResolveModelDir(models_dir); dir.ok()) {
    current = fs::path(*dir).filename().string();
  }
  std::vector<std::string> removed;
  const int64_t excess = static_cast<int64_t>(versions.size()) - keep;
  for (int64_t i = 0; i < excess; ++i) {
    if (versions[i] == current) continue;
    std::error_code ec;
    fs::remove_all(fs::path(models_dir) / versions[i], ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat(models_dir, "/", versions[i], ": cannot remove: ", ec.message()));
    }
    removed.push_back(versions[i]);
  }
  return removed;
}

absl::StatusOr<std::string> ResolveModelDir(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::exists(p / kMetadataFile, ec)) return p.string();
  const fs::path current = p / kCurrent;
  if (fs::is_symlink(current, ec)) {
    const fs::path target = fs::read_symlink(current, ec);
    if (ec) return absl::InternalError(absl::StrCat(current.string(), ": ", ec.message()));
    const fs::path dir = target.is_absolute() ? target : p / target;
    if (!fs::exists(dir / kMetadataFile, ec)) {
      return absl::NotFoundError(absl::StrCat(current.string(), " points at ", dir.string(),
                                              ", which holds no ", kMetadataFile));
    }
    return dir.string();
  }
  if (fs::exists(p / "model.json", ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     ": a format version 1 model (model.json), which is no longer "
                     "supported (expected ",
                     kModelFormatVersion, "); retrain it"));
  }
  return absl::NotFoundError(absl::StrCat(path, ": no model here (neither ", kMetadataFile,
                                          " nor a '", kCurrent, "' link)"));
}

}  // namespace recloop
