#include "data/item_reader.h"

#include <iconv.h>

#include <array>
#include <cerrno>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace recloop {
namespace {

constexpr std::array<const char*, 19> kMovieLensGenres = {
    "unknown", "Action",    "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama", "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance", "Sci-Fi",    "Thriller",  "War",       "Western"};

// `text` converted by iconv from `from` to UTF-8; false if it is not valid in `from`.
bool ToUtf8(const char* from, const std::string& text, std::string* out) {
  iconv_t cd = iconv_open("UTF-8", from);
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  out->assign(text.size() * 2 + 4, '\0');
  char* in = const_cast<char*>(text.data());
  size_t in_left = text.size();
  char* dst = out->data();
  size_t out_left = out->size();
  const size_t rc = iconv(cd, &in, &in_left, &dst, &out_left);
  iconv_close(cd);
  if (rc == static_cast<size_t>(-1)) return false;
  out->resize(out->size() - out_left);
  return true;
}

}  // namespace

absl::StatusOr<std::vector<ItemRecord>> ReadMovieLensItems(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the item file"));
  std::vector<ItemRecord> out;
  std::string raw, line;
  for (int64_t number = 1; std::getline(in, raw); ++number) {
    if (!raw.empty() && raw.back() == '\r') raw.pop_back();
    if (absl::StripAsciiWhitespace(raw).empty()) continue;
    auto error = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": ", what));
    };
    // UTF-8 as it is; anything else is read as Latin-1 (every byte string is valid Latin-1).
    if (!ToUtf8("UTF-8", raw, &line) && !ToUtf8("ISO-8859-1", raw, &line)) {
      return error("cannot convert the line to UTF-8");
    }
    const std::vector<std::string> fields = absl::StrSplit(line, '|');
    if (fields.size() != 5 + kMovieLensGenres.size()) {
      return error(absl::StrCat("expected ", 5 + kMovieLensGenres.size(),
                                " '|'-separated fields (id|title|release|video release|URL|19 "
                                "genre flags), got ",
                                fields.size()));
    }
    ItemRecord record;
    record.item = std::string(absl::StripAsciiWhitespace(fields[0]));
    if (record.item.empty()) return error("empty item ID");
    record.title = std::string(absl::StripAsciiWhitespace(fields[1]));
    for (size_t g = 0; g < kMovieLensGenres.size(); ++g) {
      const std::string& flag = fields[5 + g];
      if (flag != "0" && flag != "1") {
        return error(absl::StrCat("genre flag ", g + 1, " (", kMovieLensGenres[g],
                                  ") must be 0 or 1, got '", flag, "'"));
      }
      if (flag == "1") record.categories.emplace_back(kMovieLensGenres[g]);
    }
    out.push_back(std::move(record));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no items"));
  return out;
}

}  // namespace recloop
