#include "data/csv_record.h"

#include <csv.h>

#include <algorithm>

namespace recloop::reader_internal {
namespace {

struct Sink {
  std::string* storage;
  std::vector<size_t>* ends;
};

void OnField(void* bytes, size_t len, void* data) {
  Sink* sink = static_cast<Sink*>(data);
  if (len > 0) sink->storage->append(static_cast<const char*>(bytes), len);
  sink->ends->push_back(sink->storage->size());
}

void OnRecordEnd(int, void*) {}

// The parser of one record, freed on every path.
class Parser {
 public:
  Parser() { ok_ = csv_init(&p_, CSV_STRICT | CSV_STRICT_FINI) == 0; }
  ~Parser() {
    if (ok_) csv_free(&p_);
  }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  std::string Run(std::string_view record, Sink* sink) {
    if (!ok_) return "out of memory while parsing a CSV record";
    if (csv_parse(&p_, record.data(), record.size(), OnField, OnRecordEnd, sink) != record.size()) {
      return Error();
    }
    if (csv_fini(&p_, OnField, OnRecordEnd, sink) != 0) return Error();
    return "";
  }

 private:
  std::string Error() {
    if (csv_error(&p_) == CSV_EPARSE) {
      return "malformed CSV quoting (RFC 4180: a quoted field must be closed, with \"\" for a "
             "quote inside it, and nothing but a comma may follow its closing quote)";
    }
    return std::string("CSV parse error: ") + csv_strerror(csv_error(&p_));
  }

  csv_parser p_;
  bool ok_ = false;
};

}  // namespace

size_t CountQuotes(std::string_view text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '"'));
}

std::string CsvRecordSplitter::Split(std::string_view record,
                                     std::vector<std::string_view>* fields) {
  storage_.clear();
  ends_.clear();
  fields->clear();
  Sink sink{&storage_, &ends_};
  Parser parser;
  std::string error = parser.Run(record, &sink);
  if (!error.empty()) return error;
  size_t begin = 0;
  for (const size_t end : ends_) {
    fields->push_back(std::string_view(storage_).substr(begin, end - begin));
    begin = end;
  }
  return "";
}

}  // namespace recloop::reader_internal
