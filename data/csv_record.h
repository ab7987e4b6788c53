// One CSV record split into its fields by RFC 4180 (quoted fields, "" for a quote inside them,
// commas and line breaks inside quotes), through Debian's libcsv (internal to data/: the
// interaction reader's rows and header, format_detect.h and row_parser.h).
#ifndef RECLOOP_DATA_CSV_RECORD_H_
#define RECLOOP_DATA_CSV_RECORD_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace recloop::reader_internal {

// True if `text` contains a quote character: the records that need CsvRecordSplitter.
inline bool HasQuote(std::string_view text) { return text.find('"') != std::string_view::npos; }

// The number of quote characters in `text`: a record whose count is odd so far has a quoted
// field still open (RFC 4180 doubles a quote inside quotes, so the parity is exact).
size_t CountQuotes(std::string_view text);

// Splits records; reusable. Not thread-safe: one per thread.
class CsvRecordSplitter {
 public:
  // Splits `record` (one whole record, which may span lines, without its final line break) at
  // commas, unquoting quoted fields and trimming spaces around unquoted ones. The views point
  // into this splitter's storage and stay valid until the next call. Returns "" or what is
  // wrong (a quote inside an unquoted field, text after a closing quote, an unterminated quoted
  // field).
  std::string Split(std::string_view record, std::vector<std::string_view>* fields);

 private:
  std::string storage_;       // the fields' bytes, back to back
  std::vector<size_t> ends_;  // end offset of each field in storage_
};

}  // namespace recloop::reader_internal

#endif  // RECLOOP_DATA_CSV_RECORD_H_
