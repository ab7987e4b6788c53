// Helpers shared by the tests: status assertions, temporary directories, the data-set path.
#ifndef RECLOOP_TESTS_TEST_UTIL_H_
#define RECLOOP_TESTS_TEST_UTIL_H_

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const ::absl::Status _s = ::recloop::test::AsStatus(expr); \
    ASSERT_TRUE(_s.ok()) << _s;                          \
  } while (0)
#define EXPECT_OK(expr)                                  \
  do {                                                   \
    const ::absl::Status _s = ::recloop::test::AsStatus(expr); \
    EXPECT_TRUE(_s.ok()) << _s;                          \
  } while (0)

// ASSERT_OK_AND_ASSIGN(lhs, expr): asserts a StatusOr is ok and moves its value into lhs.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(RECLOOP_TEST_CONCAT_(_statusor_, __LINE__), lhs, expr)
#define RECLOOP_TEST_CONCAT_INNER_(a, b) a##b
#define RECLOOP_TEST_CONCAT_(a, b) RECLOOP_TEST_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  ASSERT_TRUE(tmp.ok()) << tmp.status();           \
  lhs = std::move(tmp).value()

namespace recloop::test {

inline absl::Status AsStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("recloop_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

  // Writes `content` to file `name` and returns its path.
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string p = File(name);
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::filesystem::path path_;
};

// The folder holding ml-100k/: $RECLOOP_DATASETS, else the CMake-configured default. Empty if
// ml-100k/u.data is not there.
// The data set folder `name` holding `file`: under $RECLOOP_DATASETS, else the CMake-configured
// default. Empty if it is not there.
inline std::string DatasetDir(const std::string& name, const std::string& file) {
  for (const char* var : {"RECLOOP_DATASETS", "RECLOOP_DATASETS_DEFAULT"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') {
      const auto dir = std::filesystem::path(v) / name;
      if (std::filesystem::exists(dir / file)) return dir.string();
    }
  }
  return "";
}

inline std::string Ml100kDir() { return DatasetDir("ml-100k", "u.data"); }

}  // namespace recloop::test

// Skips the test with a clear message when ML-100K is not available.
#define REQUIRE_ML100K(dir_var)                                                              \
  const std::string dir_var = ::recloop::test::Ml100kDir();                                  \
  if (dir_var.empty()) {                                                                     \
    GTEST_SKIP() << "MovieLens 100K not found: set RECLOOP_DATASETS to the folder holding "  \
                    "ml-100k/ (e.g. ../shared/datasets)";                                    \
  }

// Skips the test with a clear message when the Steam plays data set is not available.
#define REQUIRE_STEAM(dir_var)                                                             \
  const std::string dir_var = ::recloop::test::DatasetDir("steam-plays", "plays.csv");     \
  if (dir_var.empty()) {                                                                   \
    GTEST_SKIP() << "steam-plays/plays.csv not found: set RECLOOP_DATASETS to the folder " \
                    "holding steam-plays/ (e.g. ../shared/datasets)";                      \
  }

// Skips an accuracy-figure test in sanitizer builds: the same code runs there in the small
// tests, and the full figure (minutes under ASan) is checked in the Release stage.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SKIP_ACCURACY_FIGURE_UNDER_SANITIZERS()                                              \
  GTEST_SKIP() << "accuracy figure on a full data set: checked in the Release build, too "   \
                  "slow under sanitizers (their code paths run in the small tests)"
#else
#define SKIP_ACCURACY_FIGURE_UNDER_SANITIZERS() static_cast<void>(0)
#endif

#endif  // RECLOOP_TESTS_TEST_UTIL_H_
