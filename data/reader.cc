// Reading interaction files (formats and error contract in reader.h).
//
// Reading is built for files of tens of millions of rows: the file is mapped into memory, cut
// into chunks at line boundaries, and the chunks are parsed in parallel (oneTBB, row_parser.h).
// IDs are then numbered by first appearance in the file, in parallel but without depending on
// the number of threads or chunks (id_interner.h), and the rows are handed to Deduplicate
// grouped by user. Errors name the first malformed line of the file: chunks record
// chunk-relative line numbers, which become file line numbers from the line counts of the
// chunks before them. The layout comes from format_detect.h; the CSV writer is csv_writer.cc.
#include "data/reader.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/mapped_file.h"
#include "data/format_detect.h"
#include "data/id_interner.h"
#include "data/row_parser.h"
#include "engine/status_macros.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/parallel_invoke.h"

namespace recloop {
namespace {

using reader_internal::ChunkResult;
using reader_internal::CountQuotes;
using reader_internal::DetectLayout;
using reader_internal::HasQuote;
using reader_internal::IdColumn;
using reader_internal::IdMerger;
using reader_internal::IsBlank;
using reader_internal::Layout;
using reader_internal::ParseChunk;
using reader_internal::Sep;

absl::Status NoInteractions(const std::string& path, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": no interactions (", std::string(why), ")"));
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

// The first non-blank line of `text`, which decides the layout.
struct FirstLine {
  std::string_view line;  // without its line break
  size_t begin = 0;       // offset of the line in the text
  size_t next = 0;        // offset of the line after it
  int64_t number = 0;     // 1-based
};

absl::StatusOr<FirstLine> FindFirstLine(const std::string& path, std::string_view text) {
  FirstLine first;
  size_t line_begin = 0;
  for (;;) {
    if (line_begin >= text.size()) return NoInteractions(path, "the file is empty");
    const size_t nl = text.find('\n', line_begin);
    const size_t line_end = nl == std::string_view::npos ? text.size() : nl;
    first.next = nl == std::string_view::npos ? text.size() : nl + 1;
    ++first.number;
    first.line = text.substr(line_begin, line_end - line_begin);
    if (!first.line.empty() && first.line.back() == '\r') first.line.remove_suffix(1);
    first.begin = line_begin;
    if (!IsBlank(first.line)) return first;
    line_begin = first.next;
  }
}

// The data rows to read: [begin, end) of the text, and the number of lines before `begin`
// (-1: not counted yet, as it is only needed to name a malformed line).
struct DataSpan {
  size_t begin = 0;
  size_t end = 0;
  int64_t lines_before = 0;
};

// The data rows after the header (if any), cut to the lines whose first byte lies in `range`
// (file offsets, which count the byte order mark `bom` the text no longer has) if not null.
DataSpan SpanOfData(std::string_view text, int64_t bom, const FirstLine& first,
                    const Layout& layout, const FileRange* range) {
  DataSpan span;
  span.begin = layout.header ? first.next : first.begin;
  span.lines_before = layout.header ? first.number : first.number - 1;
  span.end = text.size();
  if (range == nullptr) return span;
  // A line belongs to the range its first byte lies in: move each end to the start of the
  // first line at or after it.
  const size_t data_begin = span.begin;
  auto line_start_at_or_after = [&](int64_t offset) -> size_t {
    const int64_t x = offset - bom;
    if (x <= static_cast<int64_t>(data_begin)) return data_begin;
    if (x >= static_cast<int64_t>(text.size())) return text.size();
    if (text[x - 1] == '\n') return static_cast<size_t>(x);
    const size_t nl = text.find('\n', static_cast<size_t>(x));
    return nl == std::string_view::npos ? text.size() : nl + 1;
  };
  const size_t b = line_start_at_or_after(range->begin);
  span.end = std::max(b, line_start_at_or_after(range->end));
  if (b != data_begin) {
    span.begin = b;
    span.lines_before = -1;  // counted only if a line number is needed (an error)
  }
  return span;
}

// Cuts `data` into chunks of whole lines and parses them in parallel.
std::vector<ChunkResult> ParseChunks(std::string_view data, const Layout& layout,
                                     const ReadOptions& options) {
  std::vector<std::string_view> chunk_text;
  const size_t target = std::clamp(data.size() / 64, kMinChunkBytes, kMaxChunkBytes);
  // Quoted CSV may hold line breaks inside a field: a chunk then ends only at a line break
  // outside quotes, found by the parity of the quotes before it (one pass over the file).
  const bool quoted = layout.sep == Sep::kComma && HasQuote(data);
  size_t scanned = 0, quotes = 0;                 // quote characters in data[0, scanned)
  auto next_break = [&](size_t from) -> size_t {  // just after the first free '\n' >= from
    if (quoted) {
      quotes += CountQuotes(data.substr(scanned, from - scanned));
      scanned = from;
    }
    for (;;) {
      const size_t nl = data.find('\n', scanned > from ? scanned : from);
      if (nl == std::string_view::npos) return data.size();
      if (!quoted) return nl + 1;
      quotes += CountQuotes(data.substr(scanned, nl + 1 - scanned));
      scanned = nl + 1;
      if (quotes % 2 == 0) return nl + 1;
    }
  };
  for (size_t b = 0; b < data.size();) {
    size_t e = b + target;
    e = e >= data.size() ? data.size() : next_break(e);
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
  return chunks;
}

// Counts the chunks' rows into `st` and names the file's first malformed line: the error
// without skip_bad_rows, else st.first_skipped. File line numbers: chunk k starts after the
// lines of all chunks before it. A range that starts further into the file counts the lines
// before it only to name a malformed one.
absl::Status CountRows(const std::string& path, const ReadOptions& options, std::string_view text,
                       const FirstLine& first, const Layout& layout, DataSpan span,
                       const std::vector<ChunkResult>& chunks, ReadStats* st) {
  const size_t num_chunks = chunks.size();
  if (span.lines_before < 0) {
    span.lines_before = 0;
    for (const ChunkResult& c : chunks) {
      if (c.bad_line >= 0) {
        span.lines_before = std::count(text.begin(), text.begin() + span.begin, '\n');
        break;
      }
    }
  }
  std::vector<int64_t> first_line_of(num_chunks + 1, span.lines_before);
  for (size_t k = 0; k < num_chunks; ++k) {
    first_line_of[k + 1] = first_line_of[k] + chunks[k].lines;
  }
  for (size_t k = 0; k < num_chunks; ++k) {
    const ChunkResult& c = chunks[k];
    st->rows_read += static_cast<int64_t>(c.value.size());
    st->rows_skipped += c.skipped;
    if (c.bad_line < 0 || !st->first_skipped.empty()) continue;
    const int64_t line = first_line_of[k] + c.bad_line + 1;
    st->first_skipped = absl::StrCat(path, ":", line, ": ", c.bad_reason);
    if (layout.guessed_headerless && line == first.number) {
      absl::StrAppend(&st->first_skipped,
                      " (no header was recognised, so the first line was read as data; a header "
                      "must name the user and item columns, e.g. user,item,rating)");
    }
    if (!options.skip_bad_rows) {
      // The chunks before this one parsed to their end without error: this is the file's first
      // malformed line.
      std::string message = std::move(st->first_skipped);
      *st = ReadStats();
      return absl::InvalidArgumentError(message);
    }
  }
  return absl::OkStatus();
}

// Numbers the IDs of the parsed chunks (users and items at the same time) and assembles the
// deduplicated interactions. Frees the chunks.
absl::StatusOr<Interactions> Assemble(const std::string& path, const ReadOptions& options,
                                      const Layout& layout, std::vector<ChunkResult> chunks,
                                      ReadStats* st) {
  const size_t num_chunks = chunks.size();
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
  st->duplicates_merged = *merged;
  return result;
}

// Reads the data rows of `path` whose first byte lies in [range->begin, range->end) (the whole
// file when range is null). Only a whole-file read fails for a file without data rows.
absl::StatusOr<Interactions> ReadRows(const std::string& path, const ReadOptions& options,
                                      const FileRange* range, ReadStats* stats) {
  ReadStats local_stats;
  ReadStats& st = stats != nullptr ? *stats : local_stats;
  st = ReadStats();
  RETURN_IF_ERROR(ValidateReadOptions(options));
  // Non-regular files (pipes, /dev/stdin) are read into memory; the whole file is about to be
  // read, by several threads at different offsets.
  ASSIGN_OR_RETURN(const MappedFile file,
                   MappedFile::Open(path, {.read_unmappable = true, .will_need = true}));
  std::string_view text = file.view();
  // A UTF-8 byte order mark, as spreadsheet programs write, is not part of the first field.
  int64_t bom = 0;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    text.remove_prefix(3);
    bom = 3;
  }
  ASSIGN_OR_RETURN(const FirstLine first, FindFirstLine(path, text));
  ASSIGN_OR_RETURN(const Layout layout, DetectLayout(absl::StrCat(path, ":", first.number),
                                                     first.line, options.format));
  const DataSpan span = SpanOfData(text, bom, first, layout, range);
  std::vector<ChunkResult> chunks =
      ParseChunks(text.substr(span.begin, span.end - span.begin), layout, options);
  RETURN_IF_ERROR(CountRows(path, options, text, first, layout, span, chunks, &st));
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
  return Assemble(path, options, layout, std::move(chunks), &st);
}

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

}  // namespace recloop
