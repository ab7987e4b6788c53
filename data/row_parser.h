// Parsing the data rows of an interaction file, one chunk of whole lines at a time (internal to
// data/: reader.cc cuts the file into chunks and parses them in parallel with this).
#ifndef RECLOOP_DATA_ROW_PARSER_H_
#define RECLOOP_DATA_ROW_PARSER_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/format_detect.h"
#include "data/id_interner.h"
#include "data/reader.h"

namespace recloop::reader_internal {

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
// Thread-safe for distinct `out`s (first_bad_chunk is shared).
void ParseChunk(std::string_view text, size_t index, const Layout& layout,
                const ReadOptions& options, std::atomic<size_t>* first_bad_chunk,
                ChunkResult* out);

}  // namespace recloop::reader_internal

#endif  // RECLOOP_DATA_ROW_PARSER_H_
