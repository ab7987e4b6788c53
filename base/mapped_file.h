// MappedFile: the bytes of a whole file, read-only, as a memory mapping. Readers of large inputs
// (data/reader.cc's interaction files) and of model arrays (engine/model_format.cc) use it so
// that a file is parsed straight from the page cache, without a copy.
#ifndef RECLOOP_BASE_MAPPED_FILE_H_
#define RECLOOP_BASE_MAPPED_FILE_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace recloop {

struct MappedFileOptions {
  // What cannot be mapped (a pipe, /dev/stdin, a character device) is read into memory instead
  // of failing. Default false: such a file is an error.
  bool read_unmappable = false;
  // Tell the kernel that the whole file is about to be read (madvise MADV_WILLNEED), e.g. by
  // several threads at different offsets. Default false.
  bool will_need = false;
};

// Thread safety: immutable after Open, so any number of threads may read data() at once.
// Movable, not copyable; the mapping is released by the destructor.
class MappedFile {
 public:
  // Maps the whole of `path` read-only. An empty file gives size() 0 (mmap rejects length 0).
  // Errors name the path: "PATH: cannot open: <strerror>" with the errno's code (NotFound for a
  // missing file, PermissionDenied, ...); InvalidArgument "PATH: cannot open: is a directory";
  // "PATH: cannot map: <strerror>" for a file that cannot be mapped (unless read_unmappable);
  // "PATH: cannot read: <strerror>" if reading it fails.
  static absl::StatusOr<MappedFile> Open(const std::string& path,
                                         const MappedFileOptions& options = {});

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  // The file's bytes: size() of them at data() (nullptr for an empty mapped file).
  const char* data() const { return map_ != nullptr ? map_ : copy_.data(); }
  size_t size() const { return map_ != nullptr ? size_ : copy_.size(); }
  std::string_view view() const { return std::string_view(data(), size()); }
  // False if the bytes were read into memory (read_unmappable) or the file is empty.
  bool mapped() const { return map_ != nullptr; }

 private:
  MappedFile() = default;
  void Release();

  const char* map_ = nullptr;  // the mapping, or nullptr
  size_t size_ = 0;            // of the mapping
  std::string copy_;           // the bytes of what was read rather than mapped
};

}  // namespace recloop

#endif  // RECLOOP_BASE_MAPPED_FILE_H_
