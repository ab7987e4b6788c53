// MappedFile, the POSIX helpers and the Arena of base/.
#include "base/mapped_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "base/arena.h"
#include "base/posix_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using test::TempDir;

TEST(MappedFile, MapsTheWholeFile) {
  TempDir dir;
  const std::string path = dir.Write("a.txt", "hello, mapped world\n");
  ASSERT_OK_AND_ASSIGN(MappedFile f, MappedFile::Open(path));
  EXPECT_TRUE(f.mapped());
  EXPECT_EQ(f.view(), "hello, mapped world\n");
  EXPECT_EQ(f.size(), 20u);
}

TEST(MappedFile, EmptyFileHasNoBytes) {
  TempDir dir;
  const std::string path = dir.Write("empty", "");
  ASSERT_OK_AND_ASSIGN(MappedFile f, MappedFile::Open(path));
  EXPECT_EQ(f.size(), 0u);
  EXPECT_TRUE(f.view().empty());
}

TEST(MappedFile, MissingFileIsNotFoundNamingThePath) {
  TempDir dir;
  const std::string path = dir.File("nothing");
  const absl::StatusOr<MappedFile> f = MappedFile::Open(path);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), StartsWith(path + ": cannot open"));
}

TEST(MappedFile, DirectoryIsInvalidArgument) {
  TempDir dir;
  const absl::StatusOr<MappedFile> f = MappedFile::Open(dir.path().string());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("is a directory"));
}

TEST(MappedFile, PipeIsReadWhenAskedAndRefusedOtherwise) {
  TempDir dir;
  const std::string path = dir.File("fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  std::thread writer([&] {
    FILE* w = std::fopen(path.c_str(), "w");
    if (w == nullptr) return;
    std::fputs("through a pipe", w);
    std::fclose(w);
  });
  MappedFileOptions options;
  options.read_unmappable = true;
  absl::StatusOr<MappedFile> f = MappedFile::Open(path, options);
  writer.join();
  ASSERT_OK(f);
  EXPECT_FALSE(f->mapped());
  EXPECT_EQ(f->view(), "through a pipe");

  std::thread writer2([&] {
    FILE* w = std::fopen(path.c_str(), "w");
    if (w != nullptr) std::fclose(w);
  });
  const absl::StatusOr<MappedFile> refused = MappedFile::Open(path);
  writer2.join();
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), StartsWith(path + ": cannot map"));
}

TEST(MappedFile, MoveKeepsTheBytes) {
  TempDir dir;
  const std::string path = dir.Write("b", "bytes");
  ASSERT_OK_AND_ASSIGN(MappedFile a, MappedFile::Open(path));
  MappedFile b = std::move(a);
  EXPECT_EQ(b.view(), "bytes");
  ASSERT_OK_AND_ASSIGN(MappedFile c, MappedFile::Open(dir.Write("c", "other")));
  c = std::move(b);
  EXPECT_EQ(c.view(), "bytes");
}

TEST(PosixFile, WriteFileSyncedWritesAndReplaces) {
  TempDir dir;
  const std::string path = dir.File("out");
  const std::string first = "first content";
  ASSERT_OK(WriteFileSynced(path, {first.data(), first.size()}));
  const std::string second = "2nd";
  ASSERT_OK(WriteFileSynced(path, {second.data(), second.size()}));
  ASSERT_OK_AND_ASSIGN(MappedFile f, MappedFile::Open(path));
  EXPECT_EQ(f.view(), "2nd");
  ASSERT_OK(FsyncPath(dir.path().string()));
}

TEST(PosixFile, ErrorsAreInternalNamingThePath) {
  TempDir dir;
  const std::string path = dir.File("no/such/dir/file");
  const absl::Status s = WriteFileSynced(path, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(s.message()), StartsWith(path + ": "));
  EXPECT_EQ(FsyncPath(dir.File("missing")).code(), absl::StatusCode::kInternal);
}

TEST(PosixFile, ReplaceSymlinkSwapsTheTarget) {
  TempDir dir;
  const std::string link = dir.File("current");
  ASSERT_OK(ReplaceSymlink("v1", link, dir.File(".tmp-1")));
  EXPECT_EQ(std::filesystem::read_symlink(link).string(), "v1");
  ASSERT_OK(ReplaceSymlink("v2", link, dir.File(".tmp-2")));
  EXPECT_EQ(std::filesystem::read_symlink(link).string(), "v2");
  EXPECT_FALSE(std::filesystem::exists(dir.File(".tmp-2")));
}

TEST(Arena, CopiesStayValidAcrossBlocks) {
  Arena arena;
  std::vector<std::string_view> views;
  std::vector<std::string> originals;
  for (int i = 0; i < 20000; ++i) {
    originals.push_back("id-" + std::to_string(i));
    views.push_back(arena.Copy(originals.back()));
  }
  const std::string big(100000, 'x');  // larger than a block
  const std::string_view big_view = arena.Copy(big);
  for (size_t i = 0; i < views.size(); ++i) ASSERT_EQ(views[i], originals[i]);
  EXPECT_EQ(big_view, big);
  EXPECT_EQ(arena.Copy(""), "");
}

}  // namespace
}  // namespace recloop
