// Item metadata files: a display title and categories per item, for the serving catalogue.
//
// kMovieLens100K u.item: `id|title|release date|video release date|IMDb URL|g0|...|g18`, no
// header, one line per movie, the 19 genre flags (0/1) in u.genre's order (unknown, Action, ...,
// Western). The file is Latin-1: a line that is not valid UTF-8 is converted from Latin-1 (so
// "Mis\xe9rables" reads as "Misérables"). Every genre flagged 1 becomes a category.
//
// Errors: "FILE:LINE: what is wrong" for a line with the wrong number of fields, an empty ID or a
// flag other than 0/1; NotFound naming the file if it cannot be read; a file with no items.
#ifndef RECLOOP_DATA_ITEM_READER_H_
#define RECLOOP_DATA_ITEM_READER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace recloop {

struct ItemRecord {
  std::string item;
  std::string title;
  std::vector<std::string> categories;
};

absl::StatusOr<std::vector<ItemRecord>> ReadMovieLensItems(const std::string& path);

}  // namespace recloop

#endif  // RECLOOP_DATA_ITEM_READER_H_
