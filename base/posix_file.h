// Small POSIX file helpers for durable writes: a file descriptor closed on scope exit, writing
// a buffer fully, fsync of a file or directory, and an atomic symlink swap. Model versions
// (engine/model_versions.cc) are made crash-safe with them. Every error is Internal and names
// the path and the failed call: "PATH: <strerror>" (open), "PATH: write: ...", "PATH: fsync: ...".
#ifndef RECLOOP_BASE_POSIX_FILE_H_
#define RECLOOP_BASE_POSIX_FILE_H_

#include <span>
#include <string>

#include "absl/status/status.h"

namespace recloop {

// "what: strerror(err)".
std::string ErrnoMessage(const std::string& what, int err);

// Owns a file descriptor (or -1) and closes it on destruction. Not copyable; not thread-safe.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Writes all of `bytes` to `fd`, retrying short writes and EINTR; `path` names the file in the
// error. Thread-safe as write(2) is.
absl::Status WriteFully(int fd, std::span<const char> bytes, const std::string& path);

// Creates (or truncates) `path` with mode 0644, writes `bytes` and fsyncs it.
absl::Status WriteFileSynced(const std::string& path, std::span<const char> bytes);

// Fsyncs the file or directory at `path` (a directory's fsync makes renames in it durable).
absl::Status FsyncPath(const std::string& path);

// Points the symlink `link` at `target` atomically: a symlink is created at `tmp` (which must
// not exist, in the same directory) and renamed over `link`, then `link`'s directory is
// fsync'ed. Readers see the old or the new target, never none. `tmp` is removed on failure.
absl::Status ReplaceSymlink(const std::string& target, const std::string& link,
                            const std::string& tmp);

}  // namespace recloop

#endif  // RECLOOP_BASE_POSIX_FILE_H_
