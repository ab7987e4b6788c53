// Tests of the interaction file readers and the CSV writer (data/reader.h): every format and its
// auto-detection, every documented error with its exact FILE:LINE, duplicate policies, type
// weights, timestamps, multi-chunk parallel parsing, the CSV round trip, and MovieLens 100K.
#include "data/reader.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "oneapi/tbb/global_control.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using ::recloop::test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One interaction with its external IDs, for comparing results independently of dense indices.
struct Rec {
  std::string user;
  std::string item;
  float value;
  int64_t ts;

  bool operator==(const Rec& o) const {
    return user == o.user && item == o.item && value == o.value && ts == o.ts;
  }
  bool operator<(const Rec& o) const {
    return std::tie(user, item, value, ts) < std::tie(o.user, o.item, o.value, o.ts);
  }
};

void PrintTo(const Rec& r, std::ostream* os) {
  *os << "{" << r.user << ", " << r.item << ", " << r.value << ", " << r.ts << "}";
}

// The rows of `d` in stored order.
std::vector<Rec> Records(const Interactions& d) {
  std::vector<Rec> out;
  for (int64_t k = 0; k < d.size(); ++k) {
    out.push_back(
        {d.users.External(d.user[k]), d.items.External(d.item[k]), d.value[k], d.timestamp[k]});
  }
  return out;
}

std::vector<Rec> SortedRecords(const Interactions& d) {
  std::vector<Rec> out = Records(d);
  std::sort(out.begin(), out.end());
  return out;
}

ReadOptions WithFormat(FileFormat format) {
  ReadOptions options;
  options.format = format;
  return options;
}

// Expects `status` to be InvalidArgument with a message that starts with "PATH:LINE: " and
// contains `what`.
void ExpectErrorAt(const absl::Status& status, const std::string& path, int64_t line,
                   const std::string& what) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  const std::string message(status.message());
  EXPECT_THAT(message, StartsWith(path + ":" + std::to_string(line) + ": "));
  EXPECT_THAT(message, HasSubstr(what));
}

// Reads `content` written to bad.csv in `dir`; returns the status and sets *path.
absl::Status ReadError(const TempDir& dir, const std::string& content, std::string* path,
                       const ReadOptions& options = ReadOptions()) {
  *path = dir.Write("bad.csv", content);
  return ReadInteractions(*path, options).status();
}

// ---------------------------------------------------------------------------------------------
// Formats.

TEST(Reader, ParseFileFormatAndToStringRoundTrip) {
  for (FileFormat f : {FileFormat::kAuto, FileFormat::kMovieLens100K, FileFormat::kMovieLensDat,
                       FileFormat::kCsv, FileFormat::kTsv}) {
    ASSERT_OK_AND_ASSIGN(FileFormat parsed, ParseFileFormat(ToString(f)));
    EXPECT_EQ(parsed, f) << ToString(f);
  }
  EXPECT_EQ(ToString(FileFormat::kMovieLens100K), "ml100k");
  const absl::StatusOr<FileFormat> bad = ParseFileFormat("xml");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'xml'"));
}

TEST(Reader, ReadsMovieLens100K) {
  TempDir dir;
  const std::string path = dir.Write("u.data",
                                     "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"
                                     "196\t377\t1\t878887116\n");
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d,
                       ReadInteractions(path, WithFormat(FileFormat::kMovieLens100K), &stats));
  EXPECT_TRUE(d.has_timestamps);
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"196", "242", 3, 881250949}, Rec{"196", "377", 1, 878887116},
                          Rec{"186", "302", 3, 891717742}));
  EXPECT_EQ(d.users.size(), 2);
  EXPECT_EQ(d.items.size(), 3);
  EXPECT_EQ(stats.rows_read, 3);
  EXPECT_EQ(stats.rows_skipped, 0);
  EXPECT_EQ(stats.duplicates_merged, 0);
}

TEST(Reader, ReadsMovieLens100KWithoutTimestamps) {
  TempDir dir;
  const std::string path = dir.Write("u.data", "1\t10\t4.5\n2\t10\t2\n");
  for (FileFormat f : {FileFormat::kAuto, FileFormat::kMovieLens100K}) {
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, WithFormat(f)));
    EXPECT_FALSE(d.has_timestamps);
    EXPECT_THAT(Records(d), ElementsAre(Rec{"1", "10", 4.5f, 0}, Rec{"2", "10", 2, 0}));
  }
}

TEST(Reader, ReadsMovieLensDat) {
  TempDir dir;
  const std::string path = dir.Write(
      "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n");
  for (FileFormat f : {FileFormat::kAuto, FileFormat::kMovieLensDat}) {
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, WithFormat(f)));
    EXPECT_TRUE(d.has_timestamps);
    EXPECT_THAT(Records(d),
                ElementsAre(Rec{"1", "1193", 5, 978300760}, Rec{"1", "661", 3, 978302109},
                            Rec{"2", "1193", 4, 978298413}));
  }
}

TEST(Reader, DatIdsMayContainSingleColons) {
  TempDir dir;
  const std::string path = dir.Write("ratings.dat", "urn:u:1::urn:i:7::2.5::10\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"urn:u:1", "urn:i:7", 2.5f, 10}));
}

TEST(Reader, ReadsMovieLensRatingsCsv) {
  TempDir dir;
  const std::string path =
      dir.Write("ratings.csv",
                "userId,movieId,rating,timestamp\n1,307,3.5,1256677221\n1,481,3.5,1256677456\n"
                "2,307,4.0,1192913581\n");
  for (FileFormat f : {FileFormat::kAuto, FileFormat::kCsv}) {
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, WithFormat(f)));
    EXPECT_TRUE(d.has_timestamps);
    EXPECT_THAT(Records(d),
                ElementsAre(Rec{"1", "307", 3.5f, 1256677221}, Rec{"1", "481", 3.5f, 1256677456},
                            Rec{"2", "307", 4.0f, 1192913581}));
  }
}

TEST(Reader, ReadsTsvWithHeader) {
  TempDir dir;
  const std::string path =
      dir.Write("events.tsv", "user_id\titem_id\tcount\nalice\tbook 1\t3\nbob\tbook, 2\t1\n");
  for (FileFormat f : {FileFormat::kAuto, FileFormat::kTsv}) {
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, WithFormat(f)));
    EXPECT_FALSE(d.has_timestamps);
    // A comma is an ordinary character in a tab-separated file.
    EXPECT_THAT(Records(d), ElementsAre(Rec{"alice", "book 1", 3, 0}, Rec{"bob", "book, 2", 1, 0}));
  }
}

TEST(Reader, ReadsHeaderlessCsvPositionally) {
  TempDir dir;
  {
    ASSERT_OK_AND_ASSIGN(Interactions d,
                         ReadInteractions(dir.Write("a.csv", "u1,i1\nu2,i1\n"), ReadOptions()));
    EXPECT_FALSE(d.has_timestamps);
    EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 1, 0}, Rec{"u2", "i1", 1, 0}));
  }
  {
    ASSERT_OK_AND_ASSIGN(Interactions d,
                         ReadInteractions(dir.Write("b.csv", "u1,i1,2.5\n"), ReadOptions()));
    EXPECT_FALSE(d.has_timestamps);
    EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 2.5f, 0}));
  }
  {
    ASSERT_OK_AND_ASSIGN(Interactions d,
                         ReadInteractions(dir.Write("c.csv", "u1,i1,2.5,77\n"), ReadOptions()));
    EXPECT_TRUE(d.has_timestamps);
    EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 2.5f, 77}));
  }
}

// Issue 20: RFC 4180 CSV (libcsv): quoted commas, doubled quotes, line breaks inside quotes,
// CRLF; titles as item IDs.
TEST(Reader, ReadsRfc4180QuotedCsv) {
  TempDir dir;
  const std::string path = dir.Write("plays.csv",
                                     "user,item,value\r\n"
                                     "1,\"Papers, Please\",2.5\r\n"
                                     "1,\"Say \"\"Hi\"\"\",1\r\n"
                                     "2,\"Two\nlines\",3\r\n"
                                     "\"2\",Portal,4\r\n");
  ASSERT_OK_AND_ASSIGN(const Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"1", "Papers, Please", 2.5f, 0}, Rec{"1", "Say \"Hi\"", 1.0f, 0},
                          Rec{"2", "Two\nlines", 3.0f, 0}, Rec{"2", "Portal", 4.0f, 0}));
}

// Quoted records' fields live in the splitter's storage, overwritten by the next record: the
// reader must not take a row's ID or event type for the previous row's.
TEST(Reader, QuotedRecordsInARowKeepTheirOwnIdsAndTypes) {
  TempDir dir;
  const std::string path = dir.Write("e.csv",
                                     "user,item,type\n"
                                     "\"a\",\"x\",\"view\"\n"
                                     "\"b\",\"y\",\"purchase\"\n"
                                     "\"b\",\"z\",\"view\"\n");
  ASSERT_OK_AND_ASSIGN(const Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"a", "x", 1.0f, 0}, Rec{"b", "y", 5.0f, 0}, Rec{"b", "z", 1.0f, 0}));
}

TEST(Reader, QuotedHeaderAndManyChunksOfQuotedRows) {
  TempDir dir;
  std::string content = "\"user\",\"item\",\"value\"\n";
  for (int r = 0; r < 200000; ++r) {  // several parallel chunks, each cut outside quotes
    absl::StrAppend(&content, "u", r % 97, ",\"t, ", r % 1013, "\nend\",1\n");
  }
  const std::string path = dir.Write("many.csv", content);
  ReadOptions options;
  options.duplicates = DuplicatePolicy::kSum;
  ASSERT_OK_AND_ASSIGN(const Interactions d, ReadInteractions(path, options));
  EXPECT_EQ(d.items.size(), 1013);
  EXPECT_EQ(d.users.size(), 97);
  EXPECT_TRUE(d.items.Find("t, 5\nend").has_value());
}

TEST(Reader, MalformedQuotingNamesTheRecordsFirstLine) {
  TempDir dir;
  std::string path;
  // The record on line 3 spans lines 3-4; the bad one starts on line 5.
  ExpectErrorAt(ReadError(dir, "user,item,value\na,b,1\nc,\"d\ne\",2\nf,g\"h,3\n", &path), path, 5,
                "malformed CSV quoting");
  ExpectErrorAt(ReadError(dir, "user,item,value\na,b,1\nc,\"never closed,2\nx,y,1\n", &path), path,
                3, "malformed CSV quoting");
  ExpectErrorAt(ReadError(dir, "user,item,value\na,\"b\",1,9\n", &path), path, 2,
                "expected 3 comma-separated fields");
}

TEST(Reader, ReadsSteamPlaysAsItIs) {
  REQUIRE_STEAM(steam);
  ReadOptions options;
  options.duplicates = DuplicatePolicy::kSum;
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(const Interactions d,
                       ReadInteractions(steam + "/plays.csv", options, &stats));
  EXPECT_EQ(d.users.size(), 9418);
  // 3,600 titles, two of which differ from another only by surrounding spaces (IDs are trimmed).
  EXPECT_EQ(d.items.size(), 3598);
  EXPECT_EQ(d.size() + stats.duplicates_merged, 70489);
  EXPECT_TRUE(d.items.Find("Papers, Please").has_value());
}

TEST(Reader, HeaderIsCaseInsensitiveInAnyOrderWithExtraColumns) {
  TempDir dir;
  const std::string path = dir.Write(
      "x.csv", "Timestamp,Extra,ITEMID,UserId,Rating\n100,foo,i1,u1,4\n200,bar,i2,u1,2\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_TRUE(d.has_timestamps);
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 4, 100}, Rec{"u1", "i2", 2, 200}));
}

TEST(Reader, RecognisesQuotedHeaderNames) {
  TempDir dir;
  // As R's write.csv writes a data frame: quoted names and a quoted row-name column.
  const std::string path =
      dir.Write("r.csv", "\"\",\"userId\",\"movieId\",\"rating\"\n\"1\",7,31,2.5\n\"2\",7,32,4\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"7", "31", 2.5f, 0}, Rec{"7", "32", 4, 0}));
}

TEST(Reader, AcceptsEveryDocumentedColumnAlias) {
  TempDir dir;
  const std::vector<std::string> users = {"user", "userId", "user_id", "customer"};
  const std::vector<std::string> items = {"item", "itemId", "item_id", "movieId", "product"};
  const std::vector<std::string> values = {"value", "rating", "count", "weight"};
  const std::vector<std::string> times = {"timestamp", "time", "ts"};
  for (size_t k = 0; k < 5; ++k) {
    const std::string header = users[k % users.size()] + "," + items[k] + "," +
                               values[k % values.size()] + "," + times[k % times.size()];
    const std::string path = dir.Write("alias.csv", header + "\nu,i,3,9\n");
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
    EXPECT_THAT(Records(d), ElementsAre(Rec{"u", "i", 3, 9})) << header;
  }
  for (const std::string type : {"type", "event", "event_type"}) {
    const std::string path = dir.Write("alias.csv", "user,item," + type + "\nu,i,purchase\n");
    ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
    EXPECT_THAT(Records(d), ElementsAre(Rec{"u", "i", 5, 0})) << type;
  }
}

TEST(Reader, AutoDetectionMatchesForcedFormat) {
  TempDir dir;
  struct Case {
    std::string content;
    FileFormat format;
  };
  const std::vector<Case> cases = {
      {"1\t2\t3\t4\n5\t6\t7\t8\n", FileFormat::kMovieLens100K},
      {"1::2::3::4\n5::6::7::8\n", FileFormat::kMovieLensDat},
      {"user,item,rating,ts\n1,2,3,4\n5,6,7,8\n", FileFormat::kCsv},
      {"user\titem\trating\tts\n1\t2\t3\t4\n5\t6\t7\t8\n", FileFormat::kTsv},
  };
  for (const Case& c : cases) {
    const std::string path = dir.Write("f", c.content);
    ASSERT_OK_AND_ASSIGN(Interactions detected, ReadInteractions(path, ReadOptions()));
    ASSERT_OK_AND_ASSIGN(Interactions forced, ReadInteractions(path, WithFormat(c.format)));
    EXPECT_THAT(Records(detected), ElementsAre(Rec{"1", "2", 3, 4}, Rec{"5", "6", 7, 8}))
        << ToString(c.format);
    EXPECT_EQ(Records(detected), Records(forced)) << ToString(c.format);
  }
}

TEST(Reader, DetectsHeaderThatDoesNotStartWithTheUserColumn) {
  TempDir dir;
  const std::string path = dir.Write("x.csv", "movieId,userId,rating\n10,1,4\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"1", "10", 4, 0}));
}

TEST(Reader, ForcedFormatThatDoesNotMatchFails) {
  TempDir dir;
  const std::string csv = dir.Write("r.csv", "user,item,rating\nu1,i1,3\n");
  const std::string tsv = dir.Write("r.tsv", "user\titem\trating\nu1\ti1\t3\n");
  const std::string dat = dir.Write("r.dat", "1::2::3::4\n");
  const std::string ml = dir.Write("u.data", "1\t2\t3\t4\n");
  ExpectErrorAt(ReadInteractions(csv, WithFormat(FileFormat::kMovieLens100K)).status(), csv, 1,
                "ml100k format expects tab-separated fields");
  ExpectErrorAt(ReadInteractions(ml, WithFormat(FileFormat::kMovieLensDat)).status(), ml, 1,
                "dat format expects '::'-separated fields");
  ExpectErrorAt(ReadInteractions(tsv, WithFormat(FileFormat::kCsv)).status(), tsv, 1,
                "(it looks like tsv)");
  ExpectErrorAt(ReadInteractions(csv, WithFormat(FileFormat::kTsv)).status(), csv, 1,
                "(it looks like csv)");
  ExpectErrorAt(ReadInteractions(dat, WithFormat(FileFormat::kCsv)).status(), dat, 1,
                "(it looks like dat)");
  // A tab-separated file with a header is tsv, not ml100k.
  ExpectErrorAt(ReadInteractions(tsv, WithFormat(FileFormat::kMovieLens100K)).status(), tsv, 1,
                "looks like a header");
  // csv requires a header: a data line in its place names no user column.
  const std::string headerless = dir.Write("h.csv", "1,2,3\n");
  ExpectErrorAt(ReadInteractions(headerless, WithFormat(FileFormat::kCsv)).status(), headerless, 1,
                "header has no user column");
}

TEST(Reader, UndetectableFormatFails) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "\nhello world\n", &path), path, 2, "cannot detect the file format");
}

TEST(Reader, DatFileWithHeaderFails) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "UserID::MovieID::Rating::Timestamp\n1::2::3::4\n", &path), path, 1,
                "looks like a header");
}

// ---------------------------------------------------------------------------------------------
// Malformed files and rows.

TEST(Reader, WrongFieldCountNamesTheLine) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,3\nu2,i2\nu3,i3,1,9\n", &path), path, 3,
                "expected 3 comma-separated fields (as in the header), found 2");
  ExpectErrorAt(ReadError(dir, "1\t2\t3\t4\n5\t6\t7\t8\t9\n", &path), path, 2,
                "expected 4 tab-separated fields (as on the first line), found 5");
  ExpectErrorAt(ReadError(dir, "1\t2\t3\t4\t5\n", &path), path, 1,
                "expected 3 or 4 tab-separated fields");
  ExpectErrorAt(ReadError(dir, "1,2,3,4,5\n", &path), path, 1, "expected 2 to 4 comma-separated");
}

TEST(Reader, EmptyIdsFail) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "user,item\nu1,i1\n,i2\n", &path), path, 3, "empty user ID");
  // Spaces around a field are trimmed, so a field of spaces is empty.
  ExpectErrorAt(ReadError(dir, "user,item\nu1,   \n", &path), path, 2, "empty item ID");
  ExpectErrorAt(ReadError(dir, "1::::5::6\n", &path), path, 1, "empty item ID");
}

TEST(Reader, NonNumericValueFails) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,abc\n", &path), path, 2,
                "value 'abc' is not a number");
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,3.5x\n", &path), path, 2,
                "value '3.5x' is not a number");
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,\n", &path), path, 2, "empty value");
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,0x10\n", &path), path, 2,
                "is not a number");
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,1e39\n", &path), path, 2,
                "out of the range of a float");
}

TEST(Reader, NonFiniteValueFails) {
  TempDir dir;
  std::string path;
  for (const std::string v : {"nan", "NaN", "inf", "-inf", "Infinity"}) {
    ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,2\nu2,i2," + v + "\n", &path), path, 3,
                  "value '" + v + "' is not finite");
  }
}

TEST(Reader, AcceptsSignedAndExponentValues) {
  TempDir dir;
  const std::string path =
      dir.Write("v.csv", "user,item,rating\na,1,+3\na,2,-1.5\na,3,2e1\na,4,.5\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"a", "1", 3, 0}, Rec{"a", "2", -1.5f, 0},
                                      Rec{"a", "3", 20, 0}, Rec{"a", "4", 0.5f, 0}));
}

TEST(Reader, BadTimestampFails) {
  TempDir dir;
  std::string path;
  for (const std::string ts :
       {"yesterday", "12.5", "", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-01-02T25:00:00Z", "2026-01-02T03:61:00Z",
        "2026-01-02T03:04:05+0x", "2026-01-02T03:04:05+02:", "2026-01-02T03:04:05+2",
        "2026-01-02X03:04:05", "2026-1-2", "2026-01-02T03:04:05Zjunk"}) {
    const absl::Status s = ReadError(dir, "user,item,ts\nu1,i1,1\nu1,i2," + ts + "\n", &path);
    ExpectErrorAt(s, path, 3, "bad timestamp '" + ts + "'");
    EXPECT_THAT(std::string(s.message()), HasSubstr("2026-01-02T03:04:05Z")) << ts;
  }
}

TEST(Reader, HeaderWithoutUserOrItemFailsAtItsLine) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "movieId,rating\n1,2\n", &path), path, 1,
                "header has no user column");
  ExpectErrorAt(ReadError(dir, "user,rating\n1,2\n", &path), path, 1, "header has no item column");
  // After leading blank lines, the header is on a later physical line.
  ExpectErrorAt(ReadError(dir, "\n\r\n  \nuser\trating\n1\t2\n", &path), path, 4,
                "header has no item column");
}

TEST(Reader, HeaderNamingAColumnTwiceFails) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "user,userId,item\na,b,c\n", &path), path, 1,
                "both name the user column");
}

TEST(Reader, FirstLineErrorOfAGuessedHeaderlessFileHintsAtTheHeader) {
  TempDir dir;
  std::string path;
  const absl::Status s = ReadError(dir, "name,product_id,stars\nu1,i1,3\n", &path);
  ExpectErrorAt(s, path, 1, "value 'stars' is not a number");
  EXPECT_THAT(std::string(s.message()), HasSubstr("no header was recognised"));
}

TEST(Reader, MissingFileIsNotFound) {
  TempDir dir;
  const std::string path = dir.File("does_not_exist.csv");
  const absl::StatusOr<Interactions> r = ReadInteractions(path, ReadOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), StartsWith(path + ": cannot open"));
}

TEST(Reader, DirectoryFails) {
  TempDir dir;
  const std::string path = dir.path().string();
  const absl::StatusOr<Interactions> r = ReadInteractions(path, ReadOptions());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), StartsWith(path + ": cannot open"));
}

TEST(Reader, EmptyOrHeaderOnlyFileHasNoInteractions) {
  TempDir dir;
  for (const std::string content :
       {"", "\n\n", " \t\r\n\n", "user,item,rating\n", "\xEF\xBB\xBFuser,item\n\n  \n"}) {
    const std::string path = dir.Write("empty.csv", content);
    const absl::StatusOr<Interactions> r = ReadInteractions(path, ReadOptions());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(std::string(r.status().message()), StartsWith(path + ": no interactions"));
  }
}

TEST(Reader, ReportsTheFirstMalformedLine) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "user,item,rating\nu1,i1,1\nu2,i2,x\n,i3,1\n", &path), path, 3,
                "not a number");
}

TEST(Reader, LineNumbersCountBlankLinesAndCrlf) {
  TempDir dir;
  std::string path;
  ExpectErrorAt(ReadError(dir, "\r\n\r\nuser,item\r\n\r\nu1,i1\r\n   \r\n,i2\r\n", &path), path, 7,
                "empty user ID");
}

TEST(Reader, SkipBadRowsCountsAndKeepsTheFirst) {
  TempDir dir;
  const std::string path =
      dir.Write("s.csv",
                "user,item,rating,ts\nu1,i1,1,10\n,i2,1,10\nu2,i2,2,20\nu9,i9,abc,10\n"
                "u3,i3,3\n\nu3,i1,nan,5\nu3,i3,3,30\n");
  ReadOptions options;
  options.skip_bad_rows = true;
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, options, &stats));
  EXPECT_EQ(stats.rows_read, 3);
  EXPECT_EQ(stats.rows_skipped, 4);
  EXPECT_EQ(stats.first_skipped, path + ":3: empty user ID");
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"u1", "i1", 1, 10}, Rec{"u2", "i2", 2, 20}, Rec{"u3", "i3", 3, 30}));
  // IDs that occur only on skipped rows are not added.
  EXPECT_FALSE(d.users.Find("u9").has_value());
  EXPECT_FALSE(d.items.Find("i9").has_value());
  EXPECT_EQ(d.items.size(), 3);
}

TEST(Reader, SkipBadRowsWithOnlyBadRowsHasNoInteractions) {
  TempDir dir;
  const std::string path = dir.Write("s.csv", "user,item,rating\nu1,i1,x\nu2,,1\n");
  ReadOptions options;
  options.skip_bad_rows = true;
  ReadStats stats;
  const absl::StatusOr<Interactions> r = ReadInteractions(path, options, &stats);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith(path + ": no interactions"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(path + ":2: value 'x'"));
  EXPECT_EQ(stats.rows_skipped, 2);
}

TEST(Reader, StatsAreResetOnEachRead) {
  TempDir dir;
  const std::string path = dir.Write("s.csv", "user,item\nu1,i1\n");
  ReadStats stats;
  stats.rows_read = 99;
  stats.rows_skipped = 7;
  stats.duplicates_merged = 5;
  stats.first_skipped = "stale";
  ASSERT_OK(ReadInteractions(path, ReadOptions(), &stats));
  EXPECT_EQ(stats.rows_read, 1);
  EXPECT_EQ(stats.rows_skipped, 0);
  EXPECT_EQ(stats.duplicates_merged, 0);
  EXPECT_EQ(stats.first_skipped, "");
}

TEST(Reader, AcceptsWindowsLineEndings) {
  TempDir dir;
  const std::string csv =
      dir.Write("w.csv", "user,item,rating,timestamp\r\nu1,i1,4,100\r\nu2,i2,5,200\r\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(csv, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 4, 100}, Rec{"u2", "i2", 5, 200}));
  const std::string ml = dir.Write("u.data", "1\t2\t3\t4\r\n5\t6\t7\t8\r\n");
  ASSERT_OK_AND_ASSIGN(Interactions m, ReadInteractions(ml, ReadOptions()));
  EXPECT_THAT(Records(m), ElementsAre(Rec{"1", "2", 3, 4}, Rec{"5", "6", 7, 8}));
}

TEST(Reader, TrimsSpacesAroundFieldsAndHandlesAMissingFinalNewline) {
  TempDir dir;
  const std::string path =
      dir.Write("t.csv", " user , item , rating \n  u 1 ,\ti1\t,  3  \nu2,i2,1");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u 1", "i1", 3, 0}, Rec{"u2", "i2", 1, 0}));
}

TEST(Reader, SkipsUtf8ByteOrderMark) {
  TempDir dir;
  const std::string path = dir.Write("bom.csv", "\xEF\xBB\xBFuserId,movieId\n1,2\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"1", "2", 1, 0}));
}

TEST(Reader, ReadsFromAPipe) {
  TempDir dir;
  const std::string path = dir.File("fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  // A pipe cannot be mapped: this covers the reading fallback.
  std::thread writer([&] { std::ofstream(path) << "user,item,rating\nu1,i1,2\nu2,i1,3\n"; });
  const absl::StatusOr<Interactions> r = ReadInteractions(path, ReadOptions());
  writer.join();
  ASSERT_OK(r);
  EXPECT_THAT(Records(*r), ElementsAre(Rec{"u1", "i1", 2, 0}, Rec{"u2", "i1", 3, 0}));
}

// ---------------------------------------------------------------------------------------------
// Duplicates, types, timestamps, IDs.

TEST(Reader, DuplicatesLastKeepsTheLatestTimestamp) {
  TempDir dir;
  const std::string path =
      dir.Write("d.csv", "user,item,rating,ts\nu1,i1,1,300\nu1,i1,2,100\nu2,i1,7,1\nu1,i1,3,200\n");
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions(), &stats));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 1, 300}, Rec{"u2", "i1", 7, 1}));
  EXPECT_EQ(stats.rows_read, 4);
  EXPECT_EQ(stats.duplicates_merged, 2);
}

TEST(Reader, DuplicatesLastOnEqualTimestampsKeepsTheLaterRow) {
  TempDir dir;
  const std::string with_ts = dir.Write("d.csv", "user,item,rating,ts\nu,i,1,5\nu,i,2,5\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(with_ts, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u", "i", 2, 5}));
  const std::string without_ts = dir.Write("e.csv", "u,i,4\nu,i,3\n");
  ASSERT_OK_AND_ASSIGN(Interactions e, ReadInteractions(without_ts, ReadOptions()));
  EXPECT_THAT(Records(e), ElementsAre(Rec{"u", "i", 3, 0}));
}

TEST(Reader, DuplicatesSumAddsValuesAndKeepsTheLatestTimestamp) {
  TempDir dir;
  const std::string path =
      dir.Write("d.csv", "user,item,count,ts\nu1,i1,1,300\nu1,i1,2,100\nu1,i2,5,1\nu1,i1,3,200\n");
  ReadOptions options;
  options.duplicates = DuplicatePolicy::kSum;
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, options, &stats));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 6, 300}, Rec{"u1", "i2", 5, 1}));
  EXPECT_EQ(stats.duplicates_merged, 2);
}

TEST(Reader, DuplicatesErrorNamesTheFileAndPair) {
  TempDir dir;
  const std::string path = dir.Write("d.csv", "user,item\nalice,i1\nbob,i1\nalice,i1\n");
  ReadOptions options;
  options.duplicates = DuplicatePolicy::kError;
  const absl::StatusOr<Interactions> r = ReadInteractions(path, options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), StartsWith(path + ": "));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'alice'"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'i1'"));
  // Without duplicates the same policy reads fine.
  const std::string ok = dir.Write("ok.csv", "user,item\nalice,i1\nbob,i1\n");
  ASSERT_OK(ReadInteractions(ok, options));
}

TEST(Reader, TypeColumnWithoutValueUsesTypeWeights) {
  TempDir dir;
  const std::string path =
      dir.Write("e.csv",
                "user,item,event,time\nu1,i1,view,1\nu1,i2,purchase,2\nu1,i3,cart,3\n"
                "u2,i1,click,4\nu2,i2,wishlist,5\nu2,i3,,6\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_TRUE(d.has_timestamps);
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"u1", "i1", 1, 1}, Rec{"u1", "i2", 5, 2}, Rec{"u1", "i3", 3, 3},
                          Rec{"u2", "i1", 2, 4}, Rec{"u2", "i2", 1, 5}, Rec{"u2", "i3", 1, 6}));

  ReadOptions custom;
  custom.type_weights = {{"like", 4.5f}};
  ASSERT_OK_AND_ASSIGN(
      Interactions c,
      ReadInteractions(dir.Write("c.csv", "user,item,type\na,x,like\na,y,view\n"), custom));
  EXPECT_THAT(Records(c), ElementsAre(Rec{"a", "x", 4.5f, 0}, Rec{"a", "y", 1, 0}));
}

TEST(Reader, ValueColumnWinsOverTypeColumn) {
  TempDir dir;
  const std::string path =
      dir.Write("e.csv", "user,item,type,rating\nu1,i1,purchase,2.5\nu1,i2,view,4\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u1", "i1", 2.5f, 0}, Rec{"u1", "i2", 4, 0}));
}

TEST(Reader, NonFiniteTypeWeightIsRejected) {
  TempDir dir;
  ReadOptions options;
  options.type_weights["bad"] = std::numeric_limits<float>::infinity();
  const absl::StatusOr<Interactions> r =
      ReadInteractions(dir.Write("e.csv", "user,item\nu,i\n"), options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'bad'"));
}

TEST(Reader, ParsesIsoTimestamps) {
  TempDir dir;
  const std::string path = dir.Write("t.csv",
                                     "user,item,timestamp\n"
                                     "u,a,2026-01-02T03:04:05Z\n"
                                     "u,b,2026-01-02 03:04:05\n"
                                     "u,c,2026-01-02T03:04:05.789Z\n"
                                     "u,d,2026-01-02T05:04:05+02:00\n"
                                     "u,e,2026-01-01T22:04:05-0500\n"
                                     "u,f,2026-01-02\n"
                                     "u,g,1970-01-01T00:00:00Z\n"
                                     "u,h,1969-12-31T23:59:59Z\n"
                                     "u,i,2024-02-29T00:00:00Z\n"
                                     "u,j,1767323045\n"
                                     "u,k,-5\n"
                                     "u,l,2026-01-02T05:04+02\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_TRUE(d.has_timestamps);
  EXPECT_THAT(Records(d), ElementsAre(Rec{"u", "a", 1, 1767323045}, Rec{"u", "b", 1, 1767323045},
                                      Rec{"u", "c", 1, 1767323045}, Rec{"u", "d", 1, 1767323045},
                                      Rec{"u", "e", 1, 1767323045}, Rec{"u", "f", 1, 1767312000},
                                      Rec{"u", "g", 1, 0}, Rec{"u", "h", 1, -1},
                                      Rec{"u", "i", 1, 1709164800}, Rec{"u", "j", 1, 1767323045},
                                      Rec{"u", "k", 1, -5}, Rec{"u", "l", 1, 1767323040}));
}

TEST(Reader, IdsMayBeArbitraryStrings) {
  TempDir dir;
  const std::vector<std::string> users = {"user@example.com",
                                          "123e4567-e89b-12d3-a456-426614174000",
                                          "ñandú",
                                          "a b",
                                          "x:y",
                                          "#1",
                                          "'q'",
                                          "\"dq\""};
  // As they stand in the file: RFC 4180 quotes a field holding quotes and doubles them.
  std::vector<std::string> written = users;
  written.back() = "\"\"\"dq\"\"\"";
  std::string content = "customer,product\n";
  for (size_t k = 0; k < users.size(); ++k) {
    content += written[k] + ",sku/" + std::to_string(k) + "?v=1;x\n";
  }
  const std::string path = dir.Write("ids.csv", content);
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  ASSERT_EQ(d.size(), static_cast<int64_t>(users.size()));
  EXPECT_EQ(d.users.externals(), users);
  for (size_t k = 0; k < users.size(); ++k) {
    EXPECT_EQ(d.items.External(static_cast<int32_t>(k)), "sku/" + std::to_string(k) + "?v=1;x");
  }
}

TEST(Reader, IdsAreNumberedInOrderOfFirstAppearance) {
  TempDir dir;
  const std::string path =
      dir.Write("o.csv", "user,item\nzed,i9\namy,i3\nzed,i1\nbob,i3\namy,i9\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(d.users.externals(), ElementsAre("zed", "amy", "bob"));
  EXPECT_THAT(d.items.externals(), ElementsAre("i9", "i3", "i1"));
  // Sorted by (user index, item index).
  EXPECT_THAT(Records(d),
              ElementsAre(Rec{"zed", "i9", 1, 0}, Rec{"zed", "i1", 1, 0}, Rec{"amy", "i9", 1, 0},
                          Rec{"amy", "i3", 1, 0}, Rec{"bob", "i3", 1, 0}));
}

// ---------------------------------------------------------------------------------------------
// Files large enough to be parsed as many chunks in parallel.

constexpr int kBigRows = 200000;
constexpr int kBigUsers = 5003;  // prime, as is kBigItems: no (user, item) pair repeats
constexpr int kBigItems = 1009;

// Row k: user u<k % 5003>, item i<7k % 1009>, rating k % 5 + 1, timestamp 1000 + k.
std::string BigCsv() {
  std::string s = "user,item,rating,timestamp\n";
  s.reserve(kBigRows * 26);
  for (int k = 0; k < kBigRows; ++k) {
    absl::StrAppend(&s, "u", k % kBigUsers, ",i", 7 * k % kBigItems, ",", k % 5 + 1, ",", 1000 + k,
                    "\n");
  }
  return s;
}

// Replaces physical line `line` (1-based) of `s` with `text`.
void ReplaceLine(std::string* s, int line, const std::string& text) {
  size_t b = 0;
  for (int l = 1; l < line; ++l) b = s->find('\n', b) + 1;
  s->replace(b, s->find('\n', b) - b, text);
}

TEST(Reader, ParsesAManyChunkFileInFileOrder) {
  TempDir dir;
  const std::string path = dir.Write("big.csv", BigCsv());
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions(), &stats));
  ASSERT_EQ(d.size(), kBigRows);
  EXPECT_EQ(stats.rows_read, kBigRows);
  EXPECT_EQ(stats.duplicates_merged, 0);
  ASSERT_EQ(d.users.size(), kBigUsers);
  ASSERT_EQ(d.items.size(), kBigItems);
  for (int j = 0; j < kBigUsers; ++j) ASSERT_EQ(d.users.External(j), "u" + std::to_string(j));
  for (int j = 0; j < kBigItems; ++j) {
    ASSERT_EQ(d.items.External(j), "i" + std::to_string(7 * j % kBigItems));
  }
  // Every row is present with its own value and timestamp.
  std::vector<char> seen(kBigRows, 0);
  for (int64_t r = 0; r < d.size(); ++r) {
    const int64_t k = d.timestamp[r] - 1000;
    ASSERT_GE(k, 0);
    ASSERT_LT(k, kBigRows);
    ASSERT_EQ(seen[k], 0);
    seen[k] = 1;
    ASSERT_EQ(d.user[r], k % kBigUsers);
    ASSERT_EQ(d.items.External(d.item[r]), "i" + std::to_string(7 * k % kBigItems));
    ASSERT_EQ(d.value[r], static_cast<float>(k % 5 + 1));
  }
}

TEST(Reader, ResultDoesNotDependOnTheThreadCount) {
  TempDir dir;
  // Shuffled IDs so that first appearances are spread over the chunks.
  std::string content = "user,item,rating\n";
  uint64_t x = 12345;
  for (int k = 0; k < 150000; ++k) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    absl::StrAppend(&content, "user-", (x >> 33) % 40000, ",item-", (x >> 20) % 3000, ",", k % 7,
                    "\n");
  }
  const std::string path = dir.Write("shuffled.csv", content);
  Interactions serial;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    ASSERT_OK_AND_ASSIGN(serial, ReadInteractions(path, ReadOptions()));
  }
  ASSERT_OK_AND_ASSIGN(Interactions parallel, ReadInteractions(path, ReadOptions()));
  EXPECT_EQ(serial.users.externals(), parallel.users.externals());
  EXPECT_EQ(serial.items.externals(), parallel.items.externals());
  EXPECT_EQ(serial.user, parallel.user);
  EXPECT_EQ(serial.item, parallel.item);
  EXPECT_EQ(serial.value, parallel.value);
  // The first appearance order, checked against a plain serial scan of the file.
  std::vector<std::string> expected_users;
  std::vector<std::string> expected_items;
  {
    std::istringstream in(content);
    std::string line;
    std::getline(in, line);
    std::vector<char> user_seen(40000, 0), item_seen(3000, 0);
    while (std::getline(in, line)) {
      const size_t c1 = line.find(',');
      const size_t c2 = line.find(',', c1 + 1);
      const std::string u = line.substr(0, c1);
      const std::string i = line.substr(c1 + 1, c2 - c1 - 1);
      const int un = std::stoi(u.substr(5));
      const int in_ = std::stoi(i.substr(5));
      if (!user_seen[un]) expected_users.push_back(u);
      if (!item_seen[in_]) expected_items.push_back(i);
      user_seen[un] = item_seen[in_] = 1;
    }
  }
  EXPECT_EQ(parallel.users.externals(), expected_users);
  EXPECT_EQ(parallel.items.externals(), expected_items);
}

TEST(Reader, ManyChunkFileReportsTheFirstMalformedLine) {
  TempDir dir;
  std::string content = BigCsv();
  ReplaceLine(&content, 190001, "u1,i1,bad,1");
  ReplaceLine(&content, 150001, "u1,,1,1");
  ReplaceLine(&content, 170001, "u1,i1,1");
  std::string path = dir.Write("big.csv", content);
  ExpectErrorAt(ReadInteractions(path, ReadOptions()).status(), path, 150001, "empty item ID");

  ReadOptions skip;
  skip.skip_bad_rows = true;
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, skip, &stats));
  EXPECT_EQ(stats.rows_skipped, 3);
  EXPECT_EQ(stats.rows_read, kBigRows - 3);
  EXPECT_EQ(d.size(), kBigRows - 3);
  EXPECT_EQ(stats.first_skipped, path + ":150001: empty item ID");

  // Only an error near the end, after blank CRLF lines inserted early in the file: the line
  // number still counts every physical line.
  content = BigCsv();
  ReplaceLine(&content, 10, "u9,i7,1,1009\r\n\r\n\r");
  ReplaceLine(&content, 200000, "u1;i1;1;1");
  path = dir.Write("big2.csv", content);
  ExpectErrorAt(ReadInteractions(path, ReadOptions()).status(), path, 200000,
                "expected 4 comma-separated fields");
}

TEST(Reader, DuplicatesInDifferentChunksKeepFileOrder) {
  TempDir dir;
  // Row 0 is "u0,i0,1,1000"; the same pair at the end, many chunks later, with the same
  // timestamp: the later row wins under kLast.
  std::string content = BigCsv() + "u0,i0,9,1000\n";
  const std::string path = dir.Write("big.csv", content);
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions last, ReadInteractions(path, ReadOptions(), &stats));
  EXPECT_EQ(stats.duplicates_merged, 1);
  ASSERT_EQ(last.user[0], 0);
  ASSERT_EQ(last.item[0], 0);
  EXPECT_EQ(last.value[0], 9);
  EXPECT_EQ(last.timestamp[0], 1000);

  ReadOptions sum;
  sum.duplicates = DuplicatePolicy::kSum;
  ASSERT_OK_AND_ASSIGN(Interactions summed, ReadInteractions(path, sum));
  EXPECT_EQ(summed.value[0], 10);

  ReadOptions error;
  error.duplicates = DuplicatePolicy::kError;
  const absl::Status s = ReadInteractions(path, error).status();
  EXPECT_THAT(std::string(s.message()), StartsWith(path + ": "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("'u0'"));
}

TEST(Reader, ParsesAManyChunkFileGroupedByUser) {
  TempDir dir;
  // Users in order, four rows each, as in MovieLens ratings files.
  std::string content = "userId,movieId,rating,timestamp\n";
  constexpr int kUsers = 50000;
  for (int u = 0; u < kUsers; ++u) {
    for (int j = 0; j < 4; ++j) {
      absl::StrAppend(&content, 1000000 + u, ",", (u + j * 7) % 997, ",", j + 1, ",", u, "\n");
    }
  }
  const std::string path = dir.Write("ratings.csv", content);
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  ASSERT_EQ(d.size(), 4 * kUsers);
  ASSERT_EQ(d.users.size(), kUsers);
  for (int64_t r = 0; r < d.size(); ++r) {
    const int u = static_cast<int>(r / 4);
    ASSERT_EQ(d.user[r], u);
    ASSERT_EQ(d.users.External(u), std::to_string(1000000 + u));
    ASSERT_EQ(d.timestamp[r], u);
    // Within a user the rows are sorted by item index; each item's value is j + 1.
    const int item = std::stoi(d.items.External(d.item[r]));
    const int j = ((item - u) % 997 + 997) % 997 / 7;
    ASSERT_EQ(d.value[r], static_cast<float>(j + 1)) << r;
  }
}

TEST(Reader, LongIdsAreKept) {
  TempDir dir;
  const std::string a(254, 'a'), b(255, 'b'), c(100000, 'c');
  const std::string path =
      dir.Write("long.csv", "user,item\n" + a + ",x\n" + b + ",y\n" + c + ",z\n" + b + ",z\n");
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(path, ReadOptions()));
  EXPECT_THAT(d.users.externals(), ElementsAre(a, b, c));
  EXPECT_THAT(Records(d), ElementsAre(Rec{a, "x", 1, 0}, Rec{b, "y", 1, 0}, Rec{b, "z", 1, 0},
                                      Rec{c, "z", 1, 0}));
}

// ---------------------------------------------------------------------------------------------
// Writing.

TEST(Reader, WrittenCsvReadsBackIdentically) {
  Interactions data;
  data.has_timestamps = true;
  const std::vector<std::string> users = {
      "user@example.com", "123e4567-e89b-12d3-a456-426614174000", "ñandú", "a b", "7"};
  const std::vector<std::string> items = {"sku:1", "i 2", "3", "item;4"};
  for (const std::string& u : users) data.users.GetOrAdd(u);
  for (const std::string& i : items) data.items.GetOrAdd(i);
  const std::vector<float> values = {0.1f, 1.0f / 3, 1e-7f, 3.4e38f,     -2.5f,
                                     4.0f, 1e-40f,   0.0f,  123456.789f, -0.0f};
  const std::vector<int64_t> times = {0, -5, 1767323045, std::numeric_limits<int64_t>::max(),
                                      881250949};
  int k = 0;
  for (int32_t u = 0; u < data.users.size(); ++u) {
    for (int32_t i = 0; i < data.items.size(); ++i, ++k) {
      data.Add(u, i, values[k % values.size()], times[k % times.size()]);
    }
  }
  TempDir dir;
  const std::string path = dir.File("out.csv");
  ASSERT_OK(WriteInteractionsCsv(data, path));
  std::ifstream in(path);
  std::string header, first;
  std::getline(in, header);
  std::getline(in, first);
  EXPECT_EQ(header, "user,item,value,timestamp");
  EXPECT_EQ(first, "user@example.com,sku:1,0.1,0");

  ASSERT_OK_AND_ASSIGN(Interactions back, ReadInteractions(path, ReadOptions()));
  EXPECT_TRUE(back.has_timestamps);
  const std::vector<Rec> expected = SortedRecords(data);
  const std::vector<Rec> actual = SortedRecords(back);
  EXPECT_EQ(actual, expected);
  // Bit-exact floats (== would let -0 and 0 pass for each other).
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t r = 0; r < actual.size(); ++r) {
    EXPECT_EQ(std::bit_cast<uint32_t>(actual[r].value), std::bit_cast<uint32_t>(expected[r].value))
        << actual[r].value;
  }
}

TEST(Reader, LargeWrittenCsvReadsBackIdentically) {
  TempDir dir;
  const std::string src = dir.Write("big.csv", BigCsv());
  ASSERT_OK_AND_ASSIGN(Interactions data, ReadInteractions(src, ReadOptions()));
  const std::string out = dir.File("out.csv");
  ASSERT_OK(WriteInteractionsCsv(data, out));
  ASSERT_OK_AND_ASSIGN(Interactions back, ReadInteractions(out, ReadOptions()));
  // Written in (user, item) order, so the users come back with the same indices.
  EXPECT_EQ(back.users.externals(), data.users.externals());
  EXPECT_EQ(SortedRecords(back), SortedRecords(data));
}

TEST(Reader, WriteToAnUnwritablePathNamesTheFile) {
  Interactions data;
  data.Add(data.users.GetOrAdd("u"), data.items.GetOrAdd("i"), 1, 0);
  TempDir dir;
  const std::string path = dir.File("no/such/dir/out.csv");
  const absl::Status s = WriteInteractionsCsv(data, path);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), StartsWith(path + ": "));
}

TEST(Reader, FailedWriteRemovesThePartialFile) {
  Interactions data;
  for (int k = 0; k < 20000; ++k) {
    data.Add(data.users.GetOrAdd("user" + std::to_string(k)), data.items.GetOrAdd("item"), 1, k);
  }
  TempDir dir;
  const std::string path = dir.File("out.csv");
  // A file size limit makes the writes fail part way (EFBIG, with SIGXFSZ ignored).
  rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  rlimit limit = old_limit;
  limit.rlim_cur = 64 << 10;
  void (*old_handler)(int) = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  const absl::Status s = WriteInteractionsCsv(data, path);
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), StartsWith(path + ": cannot write"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Reader, WriteRefusesIdsThatWouldNotReadBack) {
  TempDir dir;
  for (const std::string bad : {"a,b", "line\nbreak", " padded", ""}) {
    Interactions data;
    data.Add(data.users.GetOrAdd(bad), data.items.GetOrAdd("i"), 1, 0);
    const std::string path = dir.File("out.csv");
    const absl::Status s = WriteInteractionsCsv(data, path);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), StartsWith(path + ": cannot write user ID")) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// MovieLens 100K.

TEST(Reader, MovieLens100KUData) {
  REQUIRE_ML100K(dir);
  ReadStats stats;
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(dir + "/u.data", ReadOptions(), &stats));
  EXPECT_EQ(d.size(), 100000);
  EXPECT_EQ(d.users.size(), 943);
  EXPECT_EQ(d.items.size(), 1682);
  EXPECT_TRUE(d.has_timestamps);
  EXPECT_EQ(stats.rows_read, 100000);
  EXPECT_EQ(stats.rows_skipped, 0);
  EXPECT_EQ(stats.duplicates_merged, 0);
  // The file's first line, "196 242 3 881250949": user 196 is the first user seen.
  EXPECT_EQ(d.users.External(0), "196");
  EXPECT_EQ(d.items.External(0), "242");
  EXPECT_EQ(d.user[0], 0);
  EXPECT_EQ(d.item[0], 0);
  EXPECT_EQ(d.value[0], 3.0f);
  EXPECT_EQ(d.timestamp[0], 881250949);
  EXPECT_EQ(*std::min_element(d.value.begin(), d.value.end()), 1.0f);
  EXPECT_EQ(*std::max_element(d.value.begin(), d.value.end()), 5.0f);
  // The same with the format forced.
  ASSERT_OK_AND_ASSIGN(Interactions forced,
                       ReadInteractions(dir + "/u.data", WithFormat(FileFormat::kMovieLens100K)));
  EXPECT_EQ(Records(forced), Records(d));
}

TEST(Reader, MovieLens100KU1Base) {
  REQUIRE_ML100K(dir);
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(dir + "/u1.base", ReadOptions()));
  EXPECT_EQ(d.size(), 80000);
  EXPECT_EQ(d.users.size(), 943);
  EXPECT_TRUE(d.has_timestamps);
}

TEST(Reader, MovieLens100KRoundTripsThroughCsv) {
  REQUIRE_ML100K(dir);
  ASSERT_OK_AND_ASSIGN(Interactions d, ReadInteractions(dir + "/u.data", ReadOptions()));
  TempDir tmp;
  const std::string out = tmp.File("u.csv");
  ASSERT_OK(WriteInteractionsCsv(d, out));
  ASSERT_OK_AND_ASSIGN(Interactions back, ReadInteractions(out, WithFormat(FileFormat::kCsv)));
  EXPECT_EQ(SortedRecords(back), SortedRecords(d));
}

// Byte ranges (the distributed trainer's input shards): ranges that tile a file read every row
// exactly once, whatever the cut points, with and without a header or a byte-order mark.
TEST(ReaderRange, RangesThatTileAFileReadEveryRowOnce) {
  TempDir dir;
  std::string body;
  for (int r = 0; r < 500; ++r) {
    body += "u" + std::to_string(r % 31) + ",i" + std::to_string(r) + "," +
            std::to_string(1 + r % 5) + "," + std::to_string(1000 + r) + "\n";
    if (r % 97 == 0) body += "\n";  // blank lines are ignored wherever they fall
  }
  for (const std::string& prefix : {std::string("user,item,rating,timestamp\n"),
                                     std::string("\xEF\xBB\xBFuser,item,rating,timestamp\n"),
                                     std::string()}) {
    const std::string path = dir.Write("tile.csv", prefix + body);
    ASSERT_OK_AND_ASSIGN(const Interactions whole, ReadInteractions(path, ReadOptions()));
    const int64_t size = static_cast<int64_t>(prefix.size() + body.size());
    for (int parts : {1, 2, 3, 7, 64}) {
      std::vector<Rec> pieces;
      for (int p = 0; p < parts; ++p) {
        const FileRange range{size * p / parts, size * (p + 1) / parts};
        ASSERT_OK_AND_ASSIGN(const Interactions part,
                             ReadInteractionsRange(path, ReadOptions(), range));
        const std::vector<Rec> recs = Records(part);
        pieces.insert(pieces.end(), recs.begin(), recs.end());
      }
      std::sort(pieces.begin(), pieces.end());
      EXPECT_EQ(pieces, SortedRecords(whole)) << parts << " parts, prefix '" << prefix << "'";
    }
  }
}

TEST(ReaderRange, AnErrorInALaterRangeNamesTheFilesLine) {
  TempDir dir;
  std::string content = "user,item,rating\n";
  for (int r = 0; r < 100; ++r) content += "u" + std::to_string(r) + ",i1,3\n";
  const int64_t bad_offset = static_cast<int64_t>(content.size());
  content += "u100,i1,three\n";  // line 102
  content += "u101,i1,3\n";
  const std::string path = dir.Write("bad.csv", content);
  absl::StatusOr<Interactions> r =
      ReadInteractionsRange(path, ReadOptions(), {bad_offset - 5, static_cast<int64_t>(content.size())});
  ExpectErrorAt(r.status(), path, 102, "three");
  // The range before it reads fine.
  ASSERT_OK_AND_ASSIGN(const Interactions before,
                       ReadInteractionsRange(path, ReadOptions(), {0, bad_offset - 5}));
  EXPECT_EQ(before.size(), 100);
}

TEST(ReaderRange, ARangeWithoutRowsIsEmptyNotAnError) {
  TempDir dir;
  const std::string path = dir.Write("one.csv", "user,item,rating\nu1,i1,4\n");
  ASSERT_OK_AND_ASSIGN(const Interactions none, ReadInteractionsRange(path, ReadOptions(), {0, 5}));
  EXPECT_TRUE(none.empty());
  ASSERT_OK_AND_ASSIGN(const Interactions past, ReadInteractionsRange(path, ReadOptions(), {999, 2000}));
  EXPECT_TRUE(past.empty());
  EXPECT_FALSE(ReadInteractionsRange(path, ReadOptions(), {10, 5}).ok());
}

}  // namespace
}  // namespace recloop
