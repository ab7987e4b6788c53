// Reading and writing interaction files (formats and error contract in reader.h).
//
// Reading is built for files of tens of millions of rows: the file is mapped into memory, cut
// into chunks at line boundaries, and the chunks are parsed in parallel (oneTBB). IDs are then
// numbered by first appearance in the file, in parallel but without depending on the number of
// threads or chunks (see "Chunks and IDs"), and the rows are handed to Deduplicate grouped by
// user. Errors name the first malformed line of the file: chunks record chunk-relative line
// numbers, which become file line numbers from the line counts of the chunks before them.
#include "data/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/status_macros.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/parallel_invoke.h"
#include "tbb/parallel_pipeline.h"

namespace recloop {
namespace {

// Debian's Abseil has its own absl::string_view (not an alias of std::string_view).
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Spaces and tabs around a field are not part of it (a tab can only surround a comma- or
// '::'-separated field: in tab-separated files it is the separator).
std::string_view Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

bool IsBlank(std::string_view line) {
  if (line.empty()) return true;
  if (line[0] != ' ' && line[0] != '\t') return false;  // the common case, decided at once
  return Trim(line).empty();
}

// A field quoted for an error message, cut short so that a binary file or a wrong separator
// (the whole line in one field) does not make a huge message.
std::string Quoted(std::string_view s) {
  constexpr size_t kMax = 48;
  if (s.size() <= kMax) return absl::StrCat("'", std::string(s), "'");
  return absl::StrCat("'", std::string(s.substr(0, kMax)), "...'");
}

absl::Status NoInteractions(const std::string& path, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": no interactions (", std::string(why), ")"));
}

// ---------------------------------------------------------------------------------------------
// File access.

// The bytes of an input file: a read-only mapping of a regular file, or a copy for what cannot
// be mapped (pipes, /dev/stdin, empty files). Mapping avoids copying a 400 MB file, and the
// chunks can be parsed straight from the page cache.
class FileBytes {
 public:
  static absl::StatusOr<std::unique_ptr<FileBytes>> Open(const std::string& path);

  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() {
    if (map_ != nullptr) munmap(map_, size_);
  }

  std::string_view view() const {
    if (map_ != nullptr) return std::string_view(static_cast<const char*>(map_), size_);
    return copy_;
  }

 private:
  FileBytes() = default;

  void* map_ = nullptr;
  size_t size_ = 0;
  std::string copy_;
};

absl::StatusOr<std::unique_ptr<FileBytes>> FileBytes::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  std::unique_ptr<FileBytes> bytes(new FileBytes);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::ErrnoToStatus(err, absl::StrCat(path, ": cannot open"));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: is a directory"));
  }
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      // The whole file is about to be read, by several threads at different offsets.
      madvise(p, static_cast<size_t>(st.st_size), MADV_WILLNEED);
      bytes->map_ = p;
      bytes->size_ = static_cast<size_t>(st.st_size);
      ::close(fd);
      return bytes;
    }
  }
  std::vector<char> buf(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      bytes->copy_.append(buf.data(), static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR) {
      const int err = errno;
      ::close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat(path, ": cannot read"));
    }
  }
  ::close(fd);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Columns, separators and the layout of a file.

enum class Role { kNone, kUser, kItem, kValue, kTimestamp, kType };

struct RoleName {
  std::string_view name;  // lower case
  Role role;
};

// The header names of reader.h, matched case-insensitively. Kept to exactly the documented list:
// a name that is not listed is an ignored extra column, so adding one could change which column
// an existing file's reading picks.
constexpr RoleName kRoleNames[] = {
    {"user", Role::kUser},       {"userid", Role::kUser},         {"user_id", Role::kUser},
    {"customer", Role::kUser},   {"item", Role::kItem},           {"itemid", Role::kItem},
    {"item_id", Role::kItem},    {"movieid", Role::kItem},        {"product", Role::kItem},
    {"value", Role::kValue},     {"rating", Role::kValue},        {"count", Role::kValue},
    {"weight", Role::kValue},    {"timestamp", Role::kTimestamp}, {"time", Role::kTimestamp},
    {"ts", Role::kTimestamp},    {"type", Role::kType},           {"event", Role::kType},
    {"event_type", Role::kType},
};

// A name may be in double quotes: R's write.csv quotes the header (and only string fields, so the
// data rows of a numeric file read as they are).
Role RoleOf(std::string_view field) {
  if (field.size() >= 2 && field.front() == '"' && field.back() == '"') {
    field = field.substr(1, field.size() - 2);
  }
  if (field.size() > 10) return Role::kNone;  // longer than any name: skip the lower-casing
  const std::string lower = absl::AsciiStrToLower(AsAbsl(field));
  for (const RoleName& r : kRoleNames) {
    if (lower == r.name) return r.role;
  }
  return Role::kNone;
}

std::string_view RoleLabel(Role role) {
  switch (role) {
    case Role::kUser:
      return "user";
    case Role::kItem:
      return "item";
    case Role::kValue:
      return "value";
    case Role::kTimestamp:
      return "timestamp";
    case Role::kType:
      return "type";
    case Role::kNone:
      break;
  }
  return "?";
}

// "user, userId, user_id or customer" (as spelled in reader.h) for messages.
std::string NamesOf(Role role) {
  switch (role) {
    case Role::kUser:
      return "user, userId, user_id or customer";
    case Role::kItem:
      return "item, itemId, item_id, movieId or product";
    default:
      return std::string(RoleLabel(role));
  }
}

enum class Sep { kComma, kTab, kDoubleColon };

std::string_view SepLabel(Sep sep) {
  switch (sep) {
    case Sep::kComma:
      return "comma-separated";
    case Sep::kTab:
      return "tab-separated";
    case Sep::kDoubleColon:
      return "'::'-separated";
  }
  return "?";
}

// Splits `line` at `sep` into trimmed fields (all of them, so that a wrong count can be told).
void Split(std::string_view line, Sep sep, std::vector<std::string_view>* fields) {
  fields->clear();
  if (sep == Sep::kDoubleColon) {
    size_t start = 0;
    for (;;) {
      const size_t pos = line.find("::", start);
      if (pos == std::string_view::npos) {
        fields->push_back(Trim(line.substr(start)));
        return;
      }
      fields->push_back(Trim(line.substr(start, pos - start)));
      start = pos + 2;
    }
  }
  const char c = sep == Sep::kComma ? ',' : '\t';
  const char* p = line.data();
  const char* const end = p + line.size();
  while (p != end) {
    const char* q = static_cast<const char*>(std::memchr(p, c, end - p));
    if (q == nullptr) break;
    fields->push_back(Trim(std::string_view(p, q - p)));
    p = q + 1;
  }
  fields->push_back(Trim(std::string_view(p, end - p)));
}

// How to read the data rows of a file.
struct Layout {
  Sep sep = Sep::kComma;
  int num_fields = 0;  // every data row has exactly this many fields
  // Field index of each column, -1 if absent (user and item are always present).
  int user = -1;
  int item = -1;
  int value = -1;
  int timestamp = -1;
  int type = -1;
  bool header = false;  // the first non-blank line names the columns; data starts after it
  // Auto-detection found no header: an error on the first line gets a hint, as the likeliest
  // cause is a header whose column names were not recognised.
  bool guessed_headerless = false;
};

bool IsNumber(std::string_view s) {
  float f;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), f);
  return ec == std::errc() && p == s.data() + s.size();
}

// Layout of a file without a header: user, item, then `min_fields` .. 4 fields of which the
// third is the value and the fourth the timestamp. The first line fixes the count for the file.
absl::StatusOr<Layout> HeaderlessLayout(const std::string& where, std::string_view format_name,
                                        Sep sep, const std::vector<std::string_view>& fields,
                                        int min_fields) {
  const int n = static_cast<int>(fields.size());
  // A header where the format has none: say so rather than "value 'rating' is not a number".
  // It is only a header if it also cannot be data (its value field is not a number).
  const bool names_columns = std::any_of(
      fields.begin(), fields.end(), [](std::string_view f) { return RoleOf(f) != Role::kNone; });
  if (names_columns && (n < 3 || !IsNumber(fields[2]))) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": this line looks like a header, but ", std::string(format_name),
                     " files have none (a file with a header naming its columns is csv or tsv)"));
  }
  if (n < min_fields || n > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": expected ", min_fields == 3 ? "3 or 4 " : "2 to 4 ", std::string(SepLabel(sep)),
        min_fields == 3 ? " fields (user, item, rating[, timestamp])"
                        : " fields (user, item[, value[, timestamp]])",
        " in ", std::string(format_name), " format, found ", n));
  }
  Layout layout;
  layout.sep = sep;
  layout.num_fields = n;
  layout.user = 0;
  layout.item = 1;
  if (n >= 3) layout.value = 2;
  if (n >= 4) layout.timestamp = 3;
  return layout;
}

absl::StatusOr<Layout> HeaderLayout(const std::string& where, Sep sep,
                                    const std::vector<std::string_view>& fields) {
  Layout layout;
  layout.sep = sep;
  layout.header = true;
  layout.num_fields = static_cast<int>(fields.size());
  for (int i = 0; i < layout.num_fields; ++i) {
    const Role role = RoleOf(fields[i]);
    int* slot = nullptr;
    switch (role) {
      case Role::kUser:
        slot = &layout.user;
        break;
      case Role::kItem:
        slot = &layout.item;
        break;
      case Role::kValue:
        slot = &layout.value;
        break;
      case Role::kTimestamp:
        slot = &layout.timestamp;
        break;
      case Role::kType:
        slot = &layout.type;
        break;
      case Role::kNone:
        continue;  // an extra column, ignored
    }
    if (*slot >= 0) {
      // Picking one silently could read ratings from the wrong column.
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": columns ", *slot + 1, " (", Quoted(fields[*slot]), ") and ", i + 1, " (",
          Quoted(fields[i]), ") both name the ", std::string(RoleLabel(role)), " column"));
    }
    *slot = i;
  }
  for (Role required : {Role::kUser, Role::kItem}) {
    if ((required == Role::kUser ? layout.user : layout.item) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": header has no ", std::string(RoleLabel(required)),
                       " column (expected one of ", NamesOf(required), ", case-insensitive)"));
    }
  }
  return layout;
}

// Works out the layout from the first non-blank line, `where` being "FILE:LINE" of that line.
//
// Auto-detection: a line containing "::" is MovieLens .dat. Otherwise the separator is the tab if
// the line has one, else the comma (a tab inside a comma-separated ID is rarer than a comma
// inside a tab-separated one). The line is a header if any of its fields is a recognised column
// name: a data row would need an ID spelled exactly like a column name, and accepting any
// position (not just the first field) lets a header list its columns in any order, and makes a
// header that names an item but no user fail with "no user column" instead of being read as
// data. Without a header, tab-separated is ml100k and comma-separated is positional
// user,item[,value[,timestamp]].
absl::StatusOr<Layout> DetectLayout(const std::string& where, std::string_view line,
                                    FileFormat format) {
  const bool has_double_colon = line.find("::") != std::string_view::npos;
  const bool has_tab = line.find('\t') != std::string_view::npos;
  const bool has_comma = line.find(',') != std::string_view::npos;
  std::vector<std::string_view> fields;
  switch (format) {
    case FileFormat::kAuto: {
      if (has_double_colon) {
        Split(line, Sep::kDoubleColon, &fields);
        return HeaderlessLayout(where, "dat", Sep::kDoubleColon, fields, 3);
      }
      if (!has_tab && !has_comma) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": cannot detect the file format: the first line has no '::', tab or comma "
            "separator (formats: ml100k, dat, csv, tsv)"));
      }
      const Sep sep = has_tab ? Sep::kTab : Sep::kComma;
      Split(line, sep, &fields);
      const bool header = std::any_of(fields.begin(), fields.end(),
                                      [](std::string_view f) { return RoleOf(f) != Role::kNone; });
      if (header) return HeaderLayout(where, sep, fields);
      ASSIGN_OR_RETURN(Layout layout,
                       sep == Sep::kTab
                           ? HeaderlessLayout(where, "ml100k", sep, fields, 3)
                           : HeaderlessLayout(where, "headerless csv", sep, fields, 2));
      layout.guessed_headerless = true;
      return layout;
    }
    case FileFormat::kMovieLens100K:
      if (!has_tab) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": ml100k format expects tab-separated fields, but the line has no tab",
            has_double_colon ? " (it looks like dat)" : (has_comma ? " (it looks like csv)" : "")));
      }
      Split(line, Sep::kTab, &fields);
      return HeaderlessLayout(where, "ml100k", Sep::kTab, fields, 3);
    case FileFormat::kMovieLensDat:
      if (!has_double_colon) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": dat format expects '::'-separated fields, but the line has no '::'",
            has_tab ? " (it looks like ml100k or tsv)"
                    : (has_comma ? " (it looks like csv)" : "")));
      }
      Split(line, Sep::kDoubleColon, &fields);
      return HeaderlessLayout(where, "dat", Sep::kDoubleColon, fields, 3);
    case FileFormat::kCsv:
      if (!has_comma) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": csv format expects a comma-separated header row naming the columns, but "
            "the line has no comma",
            has_tab ? " (it looks like tsv)" : (has_double_colon ? " (it looks like dat)" : "")));
      }
      Split(line, Sep::kComma, &fields);
      return HeaderLayout(where, Sep::kComma, fields);
    case FileFormat::kTsv:
      if (!has_tab) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": tsv format expects a tab-separated header row naming the columns, but "
            "the line has no tab",
            has_comma ? " (it looks like csv)" : (has_double_colon ? " (it looks like dat)" : "")));
      }
      Split(line, Sep::kTab, &fields);
      return HeaderLayout(where, Sep::kTab, fields);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unknown file format ", static_cast<int>(format)));
}

// ---------------------------------------------------------------------------------------------
// Fields.

// Reads `n` decimal digits at s[pos..pos+n).
bool ParseDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// ISO 8601 `YYYY-MM-DD[(T| )hh:mm[:ss[.fff]]][Z|±hh[[:]mm]]`. Without a zone the time is taken
// as UTC, as reader.h says timestamps are UTC; fractions of a second are dropped. The calendar
// is the standard library's (std::chrono), which is pure: no libc time-zone state is touched
// from the parsing threads.
bool ParseIsoTimestamp(std::string_view s, int64_t* out) {
  int year, month, day;
  if (!ParseDigits(s, 0, 4, &year) || s[4] != '-' || !ParseDigits(s, 5, 2, &month) || s[7] != '-' ||
      !ParseDigits(s, 8, 2, &day)) {
    return false;
  }
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok()) return false;  // 2026-02-30, month 13, ...
  size_t pos = 10;
  int hour = 0, minute = 0, second = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == 't' || s[pos] == ' ')) {
    if (!ParseDigits(s, 11, 2, &hour) || s.size() < 14 || s[13] != ':' ||
        !ParseDigits(s, 14, 2, &minute)) {
      return false;
    }
    pos = 16;
    if (pos < s.size() && s[pos] == ':') {
      if (!ParseDigits(s, 17, 2, &second)) return false;
      pos = 19;
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        const size_t digits = ++pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        if (pos == digits) return false;
      }
    }
    // 60: a leap second, which a count of seconds since the epoch folds into the next minute.
    if (hour > 23 || minute > 59 || second > 60) return false;
  }
  int offset = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      const int sign = s[pos] == '-' ? -1 : 1;
      int off_hour = 0, off_minute = 0;
      if (!ParseDigits(s, pos + 1, 2, &off_hour)) return false;
      pos += 3;
      if (pos < s.size()) {
        if (s[pos] == ':') ++pos;
        if (!ParseDigits(s, pos, 2, &off_minute)) return false;
        pos += 2;
      }
      if (off_hour > 23 || off_minute > 59) return false;
      offset = sign * (off_hour * 3600 + off_minute * 60);
    }
  }
  if (pos != s.size()) return false;
  const int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  *out = days * 86400 + hour * 3600 + minute * 60 + second - offset;
  return true;
}

// Timestamps: integer seconds since the epoch, or ISO 8601 (above).
bool ParseTimestamp(std::string_view s, int64_t* out) {
  if (s.size() >= 10 && s[4] == '-') return ParseIsoTimestamp(s, out);
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// A finite float, with an optional leading '+'. Returns an empty string, or what is wrong.
std::string ParseValue(std::string_view s, float* out) {
  if (s.empty()) return "empty value";
  std::string_view digits = s;
  if (digits[0] == '+' && digits.size() > 1 && digits[1] != '-' && digits[1] != '+') {
    digits.remove_prefix(1);
  }
  const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  if (ec == std::errc::result_out_of_range) {
    return absl::StrCat("value ", Quoted(s), " is out of the range of a float");
  }
  if (ec != std::errc() || p != digits.data() + digits.size()) {
    return absl::StrCat("value ", Quoted(s), " is not a number");
  }
  if (!std::isfinite(*out)) return absl::StrCat("value ", Quoted(s), " is not finite");
  return "";
}

struct Row {
  std::string_view user;
  std::string_view item;
  float value = 1.0f;
  int64_t timestamp = 0;
};

// Parses data rows of one layout. One per thread.
class RowParser {
 public:
  RowParser(const Layout& layout, const ReadOptions& options) : layout_(layout), options_(options) {
    fields_.reserve(layout.num_fields + 1);
  }

  // Parses a non-blank line. Returns an empty string, or what is wrong with the row.
  std::string Parse(std::string_view line, Row* row) {
    Split(line, layout_.sep, &fields_);
    if (static_cast<int>(fields_.size()) != layout_.num_fields) {
      return absl::StrCat("expected ", layout_.num_fields, " ", std::string(SepLabel(layout_.sep)),
                          " fields",
                          layout_.header ? " (as in the header)" : " (as on the first line)",
                          ", found ", fields_.size());
    }
    row->user = fields_[layout_.user];
    if (row->user.empty()) return "empty user ID";
    row->item = fields_[layout_.item];
    if (row->item.empty()) return "empty item ID";
    // An empty value beside a type column means "the type's weight" (the event store's export
    // writes events without a value that way).
    if (layout_.value >= 0 && !(fields_[layout_.value].empty() && layout_.type >= 0)) {
      std::string error = ParseValue(fields_[layout_.value], &row->value);
      if (!error.empty()) return error;
    } else if (layout_.type >= 0) {
      row->value = TypeWeight(fields_[layout_.type]);
    } else {
      row->value = 1.0f;
    }
    row->timestamp = 0;
    if (layout_.timestamp >= 0 && !ParseTimestamp(fields_[layout_.timestamp], &row->timestamp)) {
      return absl::StrCat("bad timestamp ", Quoted(fields_[layout_.timestamp]),
                          " (expected integer seconds since the epoch or ISO 8601 UTC like "
                          "2026-01-02T03:04:05Z)");
    }
    return "";
  }

 private:
  // An empty type is simply a type that is not listed: it weighs 1 like any other.
  float TypeWeight(std::string_view type) {
    if (type != last_type_ || !have_last_type_) {
      const auto it = options_.type_weights.find(type);
      last_weight_ = it == options_.type_weights.end() ? 1.0f : it->second;
      last_type_ = type;
      have_last_type_ = true;
    }
    return last_weight_;
  }

  const Layout& layout_;
  const ReadOptions& options_;
  std::vector<std::string_view> fields_;
  std::string_view last_type_;
  bool have_last_type_ = false;
  float last_weight_ = 1.0f;
};

// ---------------------------------------------------------------------------------------------
// Chunks and IDs.
//
// IDs are numbered without a shared table that threads would fight over, in three steps:
//  1. Parsing a chunk sends each row's ID, by hash, to one of kShards streams (per chunk).
//  2. Each shard, in parallel, reads its streams chunk by chunk into a table of its own IDs, so
//     it meets every ID's first occurrence in the file first, and gives each record its slot.
//  3. Walking each chunk's rows in order, a prefix sum over first occurrences numbers the IDs.
// Each shard's table holds its distinct IDs once (a 64th of them: it stays in cache), and every
// pass reads and writes its arrays sequentially: with a million users in random order, a
// per-row lookup in one global table would be a cache miss per row.

constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
// Per row, in place of a shard: the row has the same ID as the row before it in the chunk.
// Files grouped by user repeat the user row after row; such rows skip the streams.
constexpr uint8_t kSameAsPrevious = 0xFF;
// A record's slot in its shard, with this bit set if the record is the ID's first occurrence.
constexpr uint32_t kFirstBit = uint32_t{1} << 31;
constexpr uint32_t kSlotMask = kFirstBit - 1;
// Stream records: [length: 1 byte, or 0xFF and 4 bytes][the ID's bytes].
constexpr uint8_t kLongId = 0xFF;

int ShardOf(std::string_view id) {
  const size_t hash = absl::Hash<absl::string_view>{}(AsAbsl(id));
  return static_cast<int>(static_cast<uint64_t>(hash) >> (64 - kShardBits));
}

// The IDs of one column (users or items) of a chunk's accepted rows.
struct IdColumn {
  // Adds the ID of the next accepted row.
  void Add(std::string_view id) {
    if (!shard.empty() && id == last) {
      shard.push_back(kSameAsPrevious);
      return;
    }
    last = id;
    const int s = ShardOf(id);
    shard.push_back(static_cast<uint8_t>(s));
    ++records[s];
    std::string& out = stream[s];
    if (id.size() < kLongId) {
      out.push_back(static_cast<char>(id.size()));
    } else {
      const uint32_t size = static_cast<uint32_t>(id.size());
      char header[5];
      header[0] = static_cast<char>(kLongId);
      std::memcpy(header + 1, &size, 4);
      out.append(header, 5);
    }
    out.append(id.data(), id.size());
  }

  std::vector<uint8_t> shard;               // per row: the shard of its ID, or kSameAsPrevious
  std::array<std::string, kShards> stream;  // per shard: the records of its rows, in row order
  std::array<uint32_t, kShards> records{};  // per shard: the number of records
  // Set by step 2, per shard: per record its slot (with kFirstBit), replaced by its global index
  // at the end of step 3; and the count of first occurrences.
  std::array<std::vector<uint32_t>, kShards> slot;
  std::array<uint32_t, kShards> firsts{};
  std::string_view last;
};

// Owns copies of the distinct IDs of a shard: compact, so the shard's table compares keys
// without touching the (much larger) streams; stable, so views into it stay valid.
class Arena {
 public:
  std::string_view Copy(std::string_view s) {
    if (s.size() > capacity_ - used_) {
      capacity_ = std::max(kBlockBytes, s.size());
      blocks_.push_back(std::make_unique<char[]>(capacity_));
      used_ = 0;
    }
    char* p = blocks_.back().get() + used_;
    std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return std::string_view(p, s.size());
  }

 private:
  static constexpr size_t kBlockBytes = size_t{64} << 10;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// Numbers the IDs of one column of all chunks (given in chunk order) by first appearance in the
// file.
class IdMerger {
 public:
  explicit IdMerger(std::vector<IdColumn*> columns) : columns_(std::move(columns)) {}

  // Steps 2 and 3 above. Fails if there are too many IDs.
  absl::Status Number() {
    std::atomic<bool> overflow{false};
    tbb::parallel_for(0, kShards, [&](int s) {
      if (!AssignSlots(s)) overflow = true;
    });
    const size_t num_chunks = columns_.size();
    std::vector<int64_t> base(num_chunks + 1, 0);
    for (size_t k = 0; k < num_chunks; ++k) {
      base[k + 1] = base[k];
      for (uint32_t n : columns_[k]->firsts) base[k + 1] += n;
    }
    if (overflow || base[num_chunks] > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError("too many distinct IDs");
    }
    in_order_.resize(static_cast<size_t>(base[num_chunks]));
    tbb::parallel_for(size_t{0}, num_chunks, [&](size_t k) {
      const IdColumn& c = *columns_[k];
      std::array<uint32_t, kShards> next{};
      int64_t g = base[k];
      for (uint8_t s : c.shard) {
        if (s == kSameAsPrevious) continue;
        const uint32_t r = c.slot[s][next[s]++];
        if ((r & kFirstBit) == 0) continue;
        global_[s][r & kSlotMask] = static_cast<int32_t>(g);
        in_order_[g++] = ids_[s][r & kSlotMask];
      }
    });
    // Replace the slots by global indices, shard by shard: each pass then looks up one shard's
    // small table, where a walk over the rows would jump between all of them.
    tbb::parallel_for(0, kShards, [&](int s) {
      const std::vector<int32_t>& global = global_[s];
      for (IdColumn* column : columns_) {
        for (uint32_t& r : column->slot[s]) r = static_cast<uint32_t>(global[r & kSlotMask]);
      }
    });
    return absl::OkStatus();
  }

  // After Number: the number of distinct IDs.
  int32_t size() const { return static_cast<int32_t>(in_order_.size()); }

  // After Number: the ID map. Does not use the columns, so it can run while they are read (and
  // freed) by a Walker: IdMap has no parallel construction, and this serial step's cost grows
  // with the number of distinct IDs.
  IdMap BuildMap() const {
    IdMap map;
    map.Reserve(in_order_.size());
    for (std::string_view id : in_order_) map.GetOrAdd(id);
    return map;
  }

  // After Number: the global indices of chunk k's rows, row by row.
  class Walker {
   public:
    Walker(const IdMerger& merger, size_t k) : column_(*merger.columns_[k]) {}
    int32_t Next() {
      const uint8_t s = column_.shard[row_++];
      if (s != kSameAsPrevious) last_ = static_cast<int32_t>(column_.slot[s][next_[s]++]);
      return last_;
    }

   private:
    const IdColumn& column_;
    std::array<uint32_t, kShards> next_{};
    size_t row_ = 0;
    int32_t last_ = -1;  // a chunk's first row is never kSameAsPrevious
  };

 private:
  // Gives shard s's IDs slots in order of first appearance, and every record of the shard its
  // slot. Returns false if the shard has more IDs than a slot can address.
  bool AssignSlots(int s) {
    absl::flat_hash_map<absl::string_view, uint32_t> slots;
    std::vector<std::string_view>& ids = ids_[s];
    Arena& arena = arenas_[s];
    for (IdColumn* column : columns_) {
      const std::string& stream = column->stream[s];
      std::vector<uint32_t>& out = column->slot[s];
      out.reserve(column->records[s]);
      uint32_t firsts = 0;
      const char* p = stream.data();
      const char* const end = p + stream.size();
      while (p != end) {
        size_t size = static_cast<uint8_t>(*p++);
        if (size == kLongId) {
          uint32_t long_size;
          std::memcpy(&long_size, p, 4);
          size = long_size;
          p += 4;
        }
        const std::string_view id(p, size);
        p += size;
        const auto it = slots.find(AsAbsl(id));
        if (it != slots.end()) {
          out.push_back(it->second);
          continue;
        }
        const uint32_t slot = static_cast<uint32_t>(ids.size());
        if (slot >= kSlotMask) return false;
        const std::string_view copy = arena.Copy(id);
        slots.emplace(AsAbsl(copy), slot);
        ids.push_back(copy);
        out.push_back(kFirstBit | slot);
        ++firsts;
      }
      column->firsts[s] = firsts;
      column->stream[s] = std::string();  // read once: give the memory back now
    }
    global_[s].assign(ids.size(), -1);
    return true;
  }

  std::vector<IdColumn*> columns_;
  std::array<Arena, kShards> arenas_;
  std::array<std::vector<std::string_view>, kShards> ids_;  // per shard slot: the ID
  std::array<std::vector<int32_t>, kShards> global_;        // per shard slot: global index
  std::vector<std::string_view> in_order_;                  // global index: the ID
};

struct ChunkResult {
  // Accepted rows.
  IdColumn users;
  IdColumn items;
  std::vector<float> value;
  std::vector<int64_t> timestamp;  // empty if the file has no timestamp column
  int64_t lines = 0;               // physical lines in the chunk (when parsed to its end)
  int64_t skipped = 0;             // malformed rows
  int64_t bad_line = -1;           // 0-based line within the chunk of the first malformed row
  std::string bad_reason;
};

// Parses whole lines `text`, chunk number `index`. Without skip_bad_rows it stops at the first
// malformed row, and gives up early once an earlier chunk has failed (only the first error in
// the file is reported).
void ParseChunk(std::string_view text, size_t index, const Layout& layout,
                const ReadOptions& options, std::atomic<size_t>* first_bad_chunk,
                ChunkResult* out) {
  const size_t newlines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  out->users.shard.reserve(newlines + 1);
  out->items.shard.reserve(newlines + 1);
  // Each column's records take less than the chunk's text; spread over the shards, evenly if
  // hashing does its job. Pages reserved but never written cost nothing.
  for (int s = 0; s < kShards; ++s) {
    out->users.stream[s].reserve(text.size() / kShards);
    out->items.stream[s].reserve(text.size() / kShards);
  }
  out->value.reserve(newlines + 1);
  const bool timestamps = layout.timestamp >= 0;  // else every timestamp is 0: not stored
  if (timestamps) out->timestamp.reserve(newlines + 1);
  RowParser parser(layout, options);
  Row row;
  const char* p = text.data();
  const char* const end = p + text.size();
  int64_t line_index = 0;
  while (p != end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    const char* line_end = nl != nullptr ? nl : end;
    std::string_view line(p, line_end - p);
    p = nl != nullptr ? nl + 1 : end;
    const int64_t this_line = line_index++;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    std::string error = parser.Parse(line, &row);
    if (!error.empty()) {
      if (out->bad_line < 0) {
        out->bad_line = this_line;
        out->bad_reason = std::move(error);
      }
      ++out->skipped;
      if (options.skip_bad_rows) continue;
      size_t seen = first_bad_chunk->load(std::memory_order_relaxed);
      while (index < seen &&
             !first_bad_chunk->compare_exchange_weak(seen, index, std::memory_order_relaxed)) {
      }
      break;
    }
    if (!options.skip_bad_rows && (this_line & 1023) == 0 &&
        first_bad_chunk->load(std::memory_order_relaxed) < index) {
      break;  // an earlier chunk failed: this one's result will not be used
    }
    out->users.Add(row.user);
    out->items.Add(row.item);
    out->value.push_back(row.value);
    if (timestamps) out->timestamp.push_back(row.timestamp);
  }
  out->lines = line_index;
}

// Fills the rows of `result` (not its ID maps) from the chunks, grouped by user, each
// user's rows in file order. Deduplicate orders the rows through an index; given rows already
// grouped by user it walks its arrays in order instead of jumping around them (20M rows of a
// million users in random order: 5.5 s down to 0.8 s). File order within a user keeps "the
// later row" of the duplicate policies. Frees the chunks' contents as it goes.
//
// A parallel stable counting sort: rows are scattered into buckets of consecutive users, chunk
// by chunk in order, then each bucket is counting-sorted by user, all buckets at once.
void AssembleGroupedByUser(const IdMerger& users, const IdMerger& items, int64_t num_users,
                           std::vector<ChunkResult>* chunks, Interactions* result) {
  const size_t num_chunks = chunks->size();
  constexpr int64_t kMaxBuckets = 256;
  int shift = 0;
  while (((num_users - 1) >> shift) >= kMaxBuckets) ++shift;
  const size_t num_buckets = static_cast<size_t>(((num_users - 1) >> shift) + 1);

  // Each chunk's row count per bucket, then where they go: bucket by bucket, and chunk by chunk
  // within a bucket.
  std::vector<std::vector<size_t>> next(num_chunks, std::vector<size_t>(num_buckets, 0));
  tbb::parallel_for(size_t{0}, num_chunks, [&](size_t k) {
    IdMerger::Walker user(users, k);
    for (size_t r = 0; r < (*chunks)[k].value.size(); ++r) ++next[k][user.Next() >> shift];
  });
  std::vector<size_t> bucket_begin(num_buckets + 1, 0);
  size_t at = 0;
  for (size_t b = 0; b < num_buckets; ++b) {
    bucket_begin[b] = at;
    for (size_t k = 0; k < num_chunks; ++k) {
      const size_t n = next[k][b];
      next[k][b] = at;
      at += n;
    }
  }
  bucket_begin[num_buckets] = at;
  const size_t total = at;

  // Every element is written: no need to zero 24 bytes per row first.
  struct PackedRow {
    int32_t user;
    int32_t item;
    float value;
    int64_t timestamp;
  };
  std::unique_ptr<PackedRow[]> staging = std::make_unique_for_overwrite<PackedRow[]>(total);
  tbb::parallel_for(size_t{0}, num_chunks, [&](size_t k) {
    ChunkResult& c = (*chunks)[k];
    std::vector<size_t>& pos = next[k];
    IdMerger::Walker user(users, k);
    IdMerger::Walker item(items, k);
    for (size_t r = 0; r < c.value.size(); ++r) {
      const int32_t u = user.Next();
      staging[pos[u >> shift]++] =
          PackedRow{u, item.Next(), c.value[r], c.timestamp.empty() ? 0 : c.timestamp[r]};
    }
    c = ChunkResult();
  });

  tbb::parallel_invoke([&] { result->user.resize(total); }, [&] { result->item.resize(total); },
                       [&] { result->value.resize(total); },
                       [&] { result->timestamp.resize(total); });
  tbb::parallel_for(size_t{0}, num_buckets, [&](size_t b) {
    const size_t begin = bucket_begin[b];
    const size_t end = bucket_begin[b + 1];
    const int32_t first_user = static_cast<int32_t>(b << shift);
    std::vector<size_t> to((size_t{1} << shift) + 1, 0);
    for (size_t r = begin; r < end; ++r) ++to[staging[r].user - first_user + 1];
    to[0] = begin;
    std::partial_sum(to.begin(), to.end(), to.begin());
    for (size_t r = begin; r < end; ++r) {
      const PackedRow& row = staging[r];
      const size_t dest = to[row.user - first_user]++;
      result->user[dest] = row.user;
      result->item[dest] = row.item;
      result->value[dest] = row.value;
      result->timestamp[dest] = row.timestamp;
    }
  });
}

absl::Status ValidateReadOptions(const ReadOptions& options) {
  for (const auto& [type, weight] : options.type_weights) {
    if (!std::isfinite(weight)) {
      return absl::InvalidArgumentError(
          absl::StrCat("type_weights: weight of '", type, "' is not finite"));
    }
  }
  switch (options.duplicates) {
    case DuplicatePolicy::kLast:
    case DuplicatePolicy::kSum:
    case DuplicatePolicy::kError:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown duplicate policy ", static_cast<int>(options.duplicates)));
}

// Chunks of about 1/64 of the file: enough to keep the threads busy to the end. The lower bound
// keeps small files from being cut into slivers (each chunk has 2 * kShards streams); the upper
// bound keeps the pieces of work small on huge files.
constexpr size_t kMinChunkBytes = size_t{256} << 10;
constexpr size_t kMaxChunkBytes = size_t{8} << 20;

}  // namespace

absl::StatusOr<FileFormat> ParseFileFormat(std::string_view s) {
  if (s == "auto") return FileFormat::kAuto;
  if (s == "ml100k") return FileFormat::kMovieLens100K;
  if (s == "dat") return FileFormat::kMovieLensDat;
  if (s == "csv") return FileFormat::kCsv;
  if (s == "tsv") return FileFormat::kTsv;
  return absl::InvalidArgumentError(absl::StrCat("unknown file format '", std::string(s),
                                                 "' (expected auto, ml100k, dat, csv or tsv)"));
}

std::string_view ToString(FileFormat f) {
  switch (f) {
    case FileFormat::kAuto:
      return "auto";
    case FileFormat::kMovieLens100K:
      return "ml100k";
    case FileFormat::kMovieLensDat:
      return "dat";
    case FileFormat::kCsv:
      return "csv";
    case FileFormat::kTsv:
      return "tsv";
  }
  return "unknown";
}

namespace {

// Reads the data rows of `path` whose first byte lies in [range->begin, range->end) (the whole
// file when range is null). Only a whole-file read fails for a file without data rows.
absl::StatusOr<Interactions> ReadRows(const std::string& path, const ReadOptions& options,
                                      const FileRange* range, ReadStats* stats) {
  ReadStats local_stats;
  ReadStats& st = stats != nullptr ? *stats : local_stats;
  st = ReadStats();
  RETURN_IF_ERROR(ValidateReadOptions(options));
  ASSIGN_OR_RETURN(std::unique_ptr<FileBytes> file, FileBytes::Open(path));
  std::string_view text = file->view();
  // A UTF-8 byte order mark, as spreadsheet programs write, is not part of the first field.
  int64_t bom = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    text.remove_prefix(3);
    bom = 3;
  }

  // The first non-blank line decides the layout.
  size_t line_begin = 0;
  size_t next_line = 0;
  int64_t line_number = 0;
  std::string_view first_line;
  for (;;) {
    if (line_begin >= text.size()) return NoInteractions(path, "the file is empty");
    const size_t nl = text.find('\n', line_begin);
    const size_t line_end = nl == std::string_view::npos ? text.size() : nl;
    next_line = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_number;
    first_line = text.substr(line_begin, line_end - line_begin);
    if (!first_line.empty() && first_line.back() == '\r') first_line.remove_suffix(1);
    if (!IsBlank(first_line)) break;
    line_begin = next_line;
  }
  ASSIGN_OR_RETURN(const Layout layout,
                   DetectLayout(absl::StrCat(path, ":", line_number), first_line, options.format));
  size_t data_begin = layout.header ? next_line : line_begin;
  int64_t lines_before_data = layout.header ? line_number : line_number - 1;
  size_t data_end = text.size();
  if (range != nullptr) {
    // A line belongs to the range its first byte lies in: move each end to the start of the
    // first line at or after it.
    auto line_start_at_or_after = [&](int64_t offset) -> size_t {
      const int64_t x = offset - bom;
      if (x <= static_cast<int64_t>(data_begin)) return data_begin;
      if (x >= static_cast<int64_t>(text.size())) return text.size();
      if (text[x - 1] == '\n') return static_cast<size_t>(x);
      const size_t nl = text.find('\n', static_cast<size_t>(x));
      return nl == std::string_view::npos ? text.size() : nl + 1;
    };
    const size_t b = line_start_at_or_after(range->begin);
    data_end = std::max(b, line_start_at_or_after(range->end));
    if (b != data_begin) {
      data_begin = b;
      lines_before_data = -1;  // counted only if a line number is needed (an error)
    }
  }
  const std::string_view data = text.substr(data_begin, data_end - data_begin);

  // Cut into chunks of whole lines.
  std::vector<std::string_view> chunk_text;
  const size_t target = std::clamp(data.size() / 64, kMinChunkBytes, kMaxChunkBytes);
  for (size_t b = 0; b < data.size();) {
    size_t e = b + target;
    if (e >= data.size()) {
      e = data.size();
    } else {
      const size_t nl = data.find('\n', e);
      e = nl == std::string_view::npos ? data.size() : nl + 1;
    }
    chunk_text.push_back(data.substr(b, e - b));
    b = e;
  }
  const size_t num_chunks = chunk_text.size();
  std::vector<ChunkResult> chunks(num_chunks);
  std::atomic<size_t> first_bad_chunk{num_chunks};
  tbb::parallel_for(tbb::blocked_range<size_t>(0, num_chunks, 1), [&](const auto& range) {
    for (size_t k = range.begin(); k != range.end(); ++k) {
      ParseChunk(chunk_text[k], k, layout, options, &first_bad_chunk, &chunks[k]);
    }
  });

  // File line numbers: chunk k starts after the lines of all chunks before it. A range that
  // starts further into the file counts the lines before it only to name a malformed one.
  if (lines_before_data < 0) {
    lines_before_data = 0;
    for (const ChunkResult& c : chunks) {
      if (c.bad_line >= 0) {
        lines_before_data = std::count(text.begin(), text.begin() + data_begin, '\n');
        break;
      }
    }
  }
  std::vector<int64_t> first_line_of(num_chunks + 1, lines_before_data);
  for (size_t k = 0; k < num_chunks; ++k) {
    first_line_of[k + 1] = first_line_of[k] + chunks[k].lines;
  }
  for (size_t k = 0; k < num_chunks; ++k) {
    const ChunkResult& c = chunks[k];
    st.rows_read += static_cast<int64_t>(c.value.size());
    st.rows_skipped += c.skipped;
    if (c.bad_line < 0 || !st.first_skipped.empty()) continue;
    const int64_t line = first_line_of[k] + c.bad_line + 1;
    st.first_skipped = absl::StrCat(path, ":", line, ": ", c.bad_reason);
    if (layout.guessed_headerless && line == line_number) {
      absl::StrAppend(&st.first_skipped,
                      " (no header was recognised, so the first line was read as data; a header "
                      "must name the user and item columns, e.g. user,item,rating)");
    }
    if (!options.skip_bad_rows) {
      // The chunks before this one parsed to their end without error: this is the file's first
      // malformed line.
      std::string message = std::move(st.first_skipped);
      st = ReadStats();
      return absl::InvalidArgumentError(message);
    }
  }
  if (st.rows_read == 0 && range != nullptr) {
    Interactions none;
    none.has_timestamps = layout.timestamp >= 0;
    return none;
  }
  if (st.rows_read == 0) {
    if (st.rows_skipped > 0) {
      return NoInteractions(
          path, absl::StrCat("all ", st.rows_skipped,
                             " data rows are malformed; the first: ", st.first_skipped));
    }
    return NoInteractions(path, "the file has a header but no data rows");
  }

  // Global IDs, users and items at the same time.
  std::vector<IdColumn*> user_columns(num_chunks);
  std::vector<IdColumn*> item_columns(num_chunks);
  for (size_t k = 0; k < num_chunks; ++k) {
    user_columns[k] = &chunks[k].users;
    item_columns[k] = &chunks[k].items;
  }
  IdMerger user_merger(std::move(user_columns));
  IdMerger item_merger(std::move(item_columns));
  absl::Status user_status;
  absl::Status item_status;
  tbb::parallel_invoke([&] { user_status = user_merger.Number(); },
                       [&] { item_status = item_merger.Number(); });
  for (const absl::Status& s : {user_status, item_status}) {
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }

  Interactions result;
  result.has_timestamps = layout.timestamp >= 0;
  tbb::parallel_invoke([&] { result.users = user_merger.BuildMap(); },
                       [&] { result.items = item_merger.BuildMap(); },
                       [&] {
                         AssembleGroupedByUser(user_merger, item_merger, user_merger.size(),
                                               &chunks, &result);
                       });
  chunks = {};

  absl::StatusOr<int64_t> merged = result.Deduplicate(options.duplicates);
  if (!merged.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", merged.status().message()));
  }
  st.duplicates_merged = *merged;
  return result;
}

}  // namespace

absl::StatusOr<Interactions> ReadInteractions(const std::string& path, const ReadOptions& options,
                                              ReadStats* stats) {
  return ReadRows(path, options, nullptr, stats);
}

absl::StatusOr<Interactions> ReadInteractionsRange(const std::string& path,
                                                   const ReadOptions& options, FileRange range,
                                                   ReadStats* stats) {
  if (range.begin < 0 || range.end < range.begin) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad byte range [", range.begin, ", ",
                                                   range.end, ")"));
  }
  return ReadRows(path, options, &range, stats);
}

namespace {

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

struct RowBlock {
  size_t begin = 0;
  size_t end = 0;
};

void AppendRows(const Interactions& data, RowBlock block, std::string* out) {
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
      tbb::make_filter<void, RowBlock>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) {
            if (next_row >= n || write_errno != 0) {
              fc.stop();
              return RowBlock();
            }
            RowBlock block{next_row, std::min(n, next_row + kBlockRows)};
            next_row = block.end;
            return block;
          }) &
          tbb::make_filter<RowBlock, std::string>(tbb::filter_mode::parallel,
                                                  [&](RowBlock block) {
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
