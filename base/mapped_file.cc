#include "base/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/posix_file.h"

namespace recloop {
namespace {

// Appends everything `fd` yields until end of file.
absl::Status ReadToEnd(int fd, const std::string& path, std::string* out) {
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      out->append(buf.data(), static_cast<size_t>(n));
    } else if (n == 0) {
      return absl::OkStatus();
    } else if (errno != EINTR) {
      return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot read"));
    }
  }
}

}  // namespace

absl::StatusOr<MappedFile> MappedFile::Open(const std::string& path,
                                            const MappedFileOptions& options) {
  const ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: is a directory"));
  }
  MappedFile file;
  if (S_ISREG(st.st_mode) && st.st_size == 0) return file;
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = S_ISREG(st.st_mode) ? ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0)
                                : MAP_FAILED;
  if (p != MAP_FAILED) {
    if (options.will_need) ::madvise(p, size, MADV_WILLNEED);
    file.map_ = static_cast<const char*>(p);
    file.size_ = size;
    return file;
  }
  if (!options.read_unmappable) {
    const int err = S_ISREG(st.st_mode) ? errno : ENODEV;
    return absl::ErrnoToStatus(err, absl::StrCat(path, ": cannot map"));
  }
  if (absl::Status s = ReadToEnd(fd.get(), path, &file.copy_); !s.ok()) return s;
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      copy_(std::move(other.copy_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    Release();
    map_ = std::exchange(other.map_, nullptr);
    size_ = std::exchange(other.size_, 0);
    copy_ = std::move(other.copy_);
  }
  return *this;
}

MappedFile::~MappedFile() { Release(); }

void MappedFile::Release() {
  if (map_ != nullptr) ::munmap(const_cast<char*>(map_), size_);
  map_ = nullptr;
  size_ = 0;
}

}  // namespace recloop
