// Writing interactions as CSV (WriteInteractionsCsv in reader.h): checked first, then
// formatted in parallel blocks and written in order.
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "data/format_detect.h"
#include "data/reader.h"
#include "engine/status_macros.h"
#include "tbb/parallel_pipeline.h"

namespace recloop {
namespace {

using reader_internal::Quoted;
using reader_internal::Trim;

// Why `id` cannot be written to a CSV file and read back as the same ID, or "" if it can.
std::string_view UnwritableReason(const std::string& id) {
  if (id.empty()) return "it is empty";
  if (id.find(',') != std::string::npos) return "it contains a comma";
  if (id.find('\n') != std::string::npos || id.find('\r') != std::string::npos) {
    return "it contains a line break";
  }
  if (Trim(id).size() != id.size()) return "it has leading or trailing spaces or tabs";
  return "";
}

absl::Status CheckWritable(const std::string& path, const IdMap& ids, std::string_view what) {
  for (const std::string& id : ids.externals()) {
    const std::string_view why = UnwritableReason(id);
    if (!why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write ", std::string(what),
                                                     " ID ", Quoted(id),
                                                     " to CSV: ", std::string(why)));
    }
  }
  return absl::OkStatus();
}

struct RowRange {
  size_t begin = 0;
  size_t end = 0;
};

void AppendRows(const Interactions& data, RowRange block, std::string* out) {
  char number[64];
  for (size_t k = block.begin; k < block.end; ++k) {
    out->append(data.users.External(data.user[k]));
    out->push_back(',');
    out->append(data.items.External(data.item[k]));
    out->push_back(',');
    // The shortest form that reads back as the same float.
    char* e = std::to_chars(number, number + sizeof(number), data.value[k]).ptr;
    *e++ = ',';
    e = std::to_chars(e, number + sizeof(number), data.timestamp[k]).ptr;
    *e++ = '\n';
    out->append(number, e);
  }
}

}  // namespace

absl::Status WriteInteractionsCsv(const Interactions& data, const std::string& path) {
  const size_t n = data.user.size();
  if (data.item.size() != n || data.value.size() != n || data.timestamp.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot write: the interaction columns differ in length"));
  }
  // Refuse what would not read back as written rather than write a file that fails (or worse,
  // succeeds differently) later.
  RETURN_IF_ERROR(CheckWritable(path, data.users, "user"));
  RETURN_IF_ERROR(CheckWritable(path, data.items, "item"));
  for (size_t k = 0; k < n; ++k) {
    if (data.user[k] < 0 || data.user[k] >= data.users.size() || data.item[k] < 0 ||
        data.item[k] >= data.items.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot write: interaction ", k,
                                                     " has an index outside its ID map"));
    }
    if (!std::isfinite(data.value[k])) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot write: interaction ", k, " has a non-finite value"));
    }
  }

  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open for writing"));
  }
  // Set by the pipeline's output stage, read by its input stage (another thread) to stop early.
  std::atomic<int> write_errno{0};
  constexpr std::string_view kHeader = "user,item,value,timestamp\n";
  if (std::fwrite(kHeader.data(), 1, kHeader.size(), f) != kHeader.size()) {
    write_errno = errno != 0 ? errno : EIO;
  }

  // Blocks are formatted in parallel and written in order; the pipeline's token limit bounds
  // how much formatted text is held at once.
  constexpr size_t kBlockRows = 1 << 16;
  size_t next_row = 0;
  tbb::parallel_pipeline(
      16,
      tbb::make_filter<void, RowRange>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) {
            if (next_row >= n || write_errno != 0) {
              fc.stop();
              return RowRange();
            }
            RowRange block{next_row, std::min(n, next_row + kBlockRows)};
            next_row = block.end;
            return block;
          }) &
          tbb::make_filter<RowRange, std::string>(tbb::filter_mode::parallel,
                                                  [&](RowRange block) {
                                                    std::string text;
                                                    text.reserve((block.end - block.begin) * 32);
                                                    AppendRows(data, block, &text);
                                                    return text;
                                                  }) &
          tbb::make_filter<std::string, void>(
              tbb::filter_mode::serial_in_order, [&](const std::string& text) {
                if (write_errno == 0 &&
                    std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
                  write_errno = errno != 0 ? errno : EIO;
                }
              }));
  if (std::fflush(f) != 0 && write_errno == 0) write_errno = errno != 0 ? errno : EIO;
  if (std::fclose(f) != 0 && write_errno == 0) write_errno = errno != 0 ? errno : EIO;
  if (write_errno != 0) {
    // A truncated file could later be read as if it were complete. Only a regular file, though:
    // the path may be a device or a pipe, which is not ours to delete.
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) std::remove(path.c_str());
    return absl::ErrnoToStatus(write_errno, absl::StrCat(path, ": cannot write"));
  }
  return absl::OkStatus();
}

}  // namespace recloop
