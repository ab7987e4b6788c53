#include "base/posix_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace recloop {

std::string ErrnoMessage(const std::string& what, int err) {
  return absl::StrCat(what, ": ", std::strerror(err));
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status WriteFully(int fd, std::span<const char> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(ErrnoMessage(absl::StrCat(path, ": write"), errno));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteFileSynced(const std::string& path, std::span<const char> bytes) {
  const ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return absl::InternalError(ErrnoMessage(path, errno));
  if (absl::Status s = WriteFully(fd.get(), bytes, path); !s.ok()) return s;
  if (::fsync(fd.get()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(path, ": fsync"), errno));
  }
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path) {
  const ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return absl::InternalError(ErrnoMessage(path, errno));
  if (::fsync(fd.get()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(path, ": fsync"), errno));
  }
  return absl::OkStatus();
}

absl::Status ReplaceSymlink(const std::string& target, const std::string& link,
                            const std::string& tmp) {
  if (::symlink(target.c_str(), tmp.c_str()) != 0) {
    return absl::InternalError(ErrnoMessage(absl::StrCat(tmp, ": symlink"), errno));
  }
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(ErrnoMessage(absl::StrCat(link, ": rename"), err));
  }
  const std::filesystem::path dir = std::filesystem::path(link).parent_path();
  return FsyncPath(dir.empty() ? "." : dir.string());
}

}  // namespace recloop
