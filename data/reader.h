// Readers for rating and event files: MovieLens 100K u.data, MovieLens 1M/10M ratings.dat,
// MovieLens ratings.csv, and generic CSV/TSV event files with a header naming the columns.
//
// Formats (auto-detected from the first line unless forced):
//  - kMovieLens100K: tab-separated `user item rating timestamp`, no header.
//  - kMovieLensDat:  `user::item::rating::timestamp`, no header.
//  - kCsv / kTsv:    comma / tab separated with a header row naming the columns. Recognised
//    names (case-insensitive): user (userId, user_id, customer), item (itemId, item_id, movieId,
//    product), value (rating, count, weight), timestamp (time, ts), type (event, event_type).
//    user and item are required; the others are optional. MovieLens ratings.csv is this format.
//
// Field rules: IDs are any non-empty string without the separator (surrounding spaces trimmed).
// value must be a finite number (NaN and inf are errors); when the column is absent, or the
// field is empty in a file with a type column, the value is the event type's weight
// (type_weights) or 1. timestamp is integer seconds since the epoch or
// ISO 8601 UTC (2026-01-02T03:04:05Z); when absent it is 0. Blank lines are ignored. Extra
// columns named in the header are ignored; a row with a different number of fields than the
// header is malformed.
//
// Detection: a first line containing "::" is dat; otherwise the separator is the tab if the line
// has one, else the comma. The first line is a header if any of its fields is a recognised column
// name (so columns may come in any order); headerless tab-separated files are ml100k and
// headerless comma-separated files are positional `user,item[,value[,timestamp]]`. Header names
// may be double-quoted and a UTF-8 byte-order mark is skipped. Data fields are not unquoted (no
// RFC 4180 quoting): an ID must not contain the separator.
//
// Errors: a malformed row fails the read with "FILE:LINE: what is wrong" unless skip_bad_rows,
// which skips it and counts it in ReadStats. A file with no data rows (empty, or header only)
// is an error. Duplicate (user, item) pairs are merged by `duplicates` (interactions.h).
#ifndef RECLOOP_DATA_READER_H_
#define RECLOOP_DATA_READER_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "data/interactions.h"

namespace recloop {

enum class FileFormat { kAuto, kMovieLens100K, kMovieLensDat, kCsv, kTsv };

absl::StatusOr<FileFormat> ParseFileFormat(std::string_view s);  // auto|ml100k|dat|csv|tsv
std::string_view ToString(FileFormat f);

struct ReadOptions {
  // File format; kAuto detects it from the first line.
  FileFormat format = FileFormat::kAuto;
  // Skip malformed rows (counting them) instead of failing on the first one.
  bool skip_bad_rows = false;
  // How duplicate (user, item) pairs are merged.
  DuplicatePolicy duplicates = DuplicatePolicy::kLast;
  // Value of an event whose file has a type column but no value column, by type name. Types
  // not listed weigh 1.
  std::map<std::string, float, std::less<>> type_weights = {
      {"view", 1.0f}, {"click", 2.0f}, {"cart", 3.0f}, {"purchase", 5.0f}};
};

// Reads `path` into interactions with fresh ID maps. The result is deduplicated and sorted by
// (user, item). Thread-safe (parses in parallel with oneTBB internally).
absl::StatusOr<Interactions> ReadInteractions(const std::string& path,
                                              const ReadOptions& options,
                                              ReadStats* stats = nullptr);

// A byte range [begin, end) of a file.
struct FileRange {
  int64_t begin = 0;
  int64_t end = 0;
};

// As ReadInteractions, for the data rows whose first byte lies in `range` (so that ranges that
// tile a file read every row exactly once; training/distributed_als.h gives each process one).
// The layout comes from the file's first line, as for a whole read; errors name the file and
// its line (counting the lines before the range only when there is an error). The ID maps hold
// the range's IDs in order of first use; duplicates are merged within the range. A range with
// no data rows gives empty interactions, not an error. Thread-safe.
absl::StatusOr<Interactions> ReadInteractionsRange(const std::string& path,
                                                   const ReadOptions& options, FileRange range,
                                                   ReadStats* stats = nullptr);

// Writes interactions as CSV with header `user,item,value,timestamp`, readable by
// ReadInteractions. Returns an error naming the file if it cannot be written.
absl::Status WriteInteractionsCsv(const Interactions& data, const std::string& path);

}  // namespace recloop

#endif  // RECLOOP_DATA_READER_H_
