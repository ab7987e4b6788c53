// Format detection for interaction files (internal to data/: reader.cc, row_parser.cc and
// csv_writer.cc use it): the separators, splitting a line into fields, and the layout of a file
// worked out from its first line (the rules are reader.h's). Pure functions; thread-safe.
#ifndef RECLOOP_DATA_FORMAT_DETECT_H_
#define RECLOOP_DATA_FORMAT_DETECT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/csv_record.h"
#include "data/reader.h"

namespace recloop::reader_internal {

// Debian's Abseil has its own absl::string_view (not an alias of std::string_view).
inline absl::string_view AsAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Spaces and tabs around a field are not part of it (a tab can only surround a comma- or
// '::'-separated field: in tab-separated files it is the separator).
inline std::string_view Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

inline bool IsBlank(std::string_view line) {
  if (line.empty()) return true;
  if (line[0] != ' ' && line[0] != '\t') return false;  // the common case, decided at once
  return Trim(line).empty();
}

// A field quoted for an error message, cut short so that a binary file or a wrong separator
// (the whole line in one field) does not make a huge message.
std::string Quoted(std::string_view s);

enum class Sep { kComma, kTab, kDoubleColon };

// "comma-separated", "tab-separated" or "'::'-separated", for messages.
std::string_view SepLabel(Sep sep);

// Splits `line` at `sep` into trimmed fields (all of them, so that a wrong count can be told).
void SplitFields(std::string_view line, Sep sep, std::vector<std::string_view>* fields);

// SplitFields, but a comma-separated record with a quote character is split by RFC 4180
// (data/csv_record.h; `record` may then span lines). Returns "" or what is wrong with its
// quoting; the fields are valid until the next call with the same `csv`.
std::string SplitRecord(std::string_view record, Sep sep, CsvRecordSplitter* csv,
                        std::vector<std::string_view>* fields);

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

// Works out the layout from the first non-blank line, `where` being "FILE:LINE" of that line
// (the rules are in format_detect.cc and reader.h). Returns InvalidArgument naming `where` if
// the line does not fit `format` or names its columns wrongly.
absl::StatusOr<Layout> DetectLayout(const std::string& where, std::string_view line,
                                    FileFormat format);

}  // namespace recloop::reader_internal

#endif  // RECLOOP_DATA_FORMAT_DETECT_H_
