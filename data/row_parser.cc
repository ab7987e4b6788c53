// Parsing data rows (row_parser.h): fields, timestamps and values, and whole chunks.
#include "data/row_parser.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace recloop::reader_internal {
namespace {

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

  // True while the last parsed row's views point into storage the next Parse overwrites.
  bool fields_are_transient() const { return transient_; }

  // Parses a non-blank line. Returns an empty string, or what is wrong with the row.
  std::string Parse(std::string_view line, Row* row) {
    // A quoted CSV record's fields live in csv_, which the next record overwrites.
    transient_ = layout_.sep == Sep::kComma && HasQuote(line);
    if (transient_) have_last_type_ = false;
    if (std::string error = SplitRecord(line, layout_.sep, &csv_, &fields_); !error.empty()) {
      return error;
    }
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
  CsvRecordSplitter csv_;  // quoted records: fields_ point into it until the next Parse
  std::string_view last_type_;
  bool have_last_type_ = false;
  bool transient_ = false;
  float last_weight_ = 1.0f;
};

}  // namespace

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
  const bool csv = layout.sep == Sep::kComma;
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
    // RFC 4180: a quoted field may hold line breaks, so the record runs on while a quote is open.
    if (csv && HasQuote(line)) {
      for (size_t quotes = CountQuotes(line); quotes % 2 == 1 && p != end; ++line_index) {
        nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
        const char* next_end = nl != nullptr ? nl : end;
        quotes += CountQuotes(std::string_view(p, next_end - p));
        line = std::string_view(line.data(), next_end - line.data());
        p = nl != nullptr ? nl + 1 : end;
      }
    }
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
    if (parser.fields_are_transient()) {
      out->users.ForgetLast();
      out->items.ForgetLast();
    }
    out->value.push_back(row.value);
    if (timestamps) out->timestamp.push_back(row.timestamp);
  }
  out->lines = line_index;
}

}  // namespace recloop::reader_internal
