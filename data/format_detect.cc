// Format detection (format_detect.h; the rules are reader.h's).
#include "data/format_detect.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace recloop::reader_internal {
namespace {

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

}  // namespace

std::string Quoted(std::string_view s) {
  constexpr size_t kMax = 48;
  if (s.size() <= kMax) return absl::StrCat("'", std::string(s), "'");
  return absl::StrCat("'", std::string(s.substr(0, kMax)), "...'");
}

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

void SplitFields(std::string_view line, Sep sep, std::vector<std::string_view>* fields) {
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

std::string SplitRecord(std::string_view record, Sep sep, CsvRecordSplitter* csv,
                        std::vector<std::string_view>* fields) {
  if (sep == Sep::kComma && HasQuote(record)) return csv->Split(record, fields);
  SplitFields(record, sep, fields);
  return "";
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
  CsvRecordSplitter csv;
  // The comma-separated first line, split by RFC 4180 (a quoted header or first row).
  auto split_csv = [&]() -> absl::Status {
    const std::string error = SplitRecord(line, Sep::kComma, &csv, &fields);
    if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", error));
    return absl::OkStatus();
  };
  switch (format) {
    case FileFormat::kAuto: {
      if (has_double_colon) {
        SplitFields(line, Sep::kDoubleColon, &fields);
        return HeaderlessLayout(where, "dat", Sep::kDoubleColon, fields, 3);
      }
      if (!has_tab && !has_comma) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": cannot detect the file format: the first line has no '::', tab or comma "
            "separator (formats: ml100k, dat, csv, tsv)"));
      }
      const Sep sep = has_tab ? Sep::kTab : Sep::kComma;
      if (sep == Sep::kComma) {
        RETURN_IF_ERROR(split_csv());
      } else {
        SplitFields(line, sep, &fields);
      }
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
      SplitFields(line, Sep::kTab, &fields);
      return HeaderlessLayout(where, "ml100k", Sep::kTab, fields, 3);
    case FileFormat::kMovieLensDat:
      if (!has_double_colon) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": dat format expects '::'-separated fields, but the line has no '::'",
            has_tab ? " (it looks like ml100k or tsv)"
                    : (has_comma ? " (it looks like csv)" : "")));
      }
      SplitFields(line, Sep::kDoubleColon, &fields);
      return HeaderlessLayout(where, "dat", Sep::kDoubleColon, fields, 3);
    case FileFormat::kCsv:
      if (!has_comma) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": csv format expects a comma-separated header row naming the columns, but "
            "the line has no comma",
            has_tab ? " (it looks like tsv)" : (has_double_colon ? " (it looks like dat)" : "")));
      }
      RETURN_IF_ERROR(split_csv());
      return HeaderLayout(where, Sep::kComma, fields);
    case FileFormat::kTsv:
      if (!has_tab) {
        return absl::InvalidArgumentError(absl::StrCat(
            where,
            ": tsv format expects a tab-separated header row naming the columns, but "
            "the line has no tab",
            has_comma ? " (it looks like csv)" : (has_double_colon ? " (it looks like dat)" : "")));
      }
      SplitFields(line, Sep::kTab, &fields);
      return HeaderLayout(where, Sep::kTab, fields);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where, ": unknown file format ", static_cast<int>(format)));
}

}  // namespace recloop::reader_internal
