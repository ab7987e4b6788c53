// `recloop --version` and `recloop completion bash`, run as a user would: the version against the
// top CMakeLists.txt (and the checkout's commit), the completion script through bash itself.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "tests/tools/cli_runner.h"

namespace recloop {
namespace {

class CliCompletion : public ::testing::Test {
 protected:
  test::CliResult Run(const std::string& args) {
    return test::RunRecloop(args, dir_.File("stderr.txt"));
  }

  // The generated script, saved to a file, and a driver that sources it, sets COMP_WORDS to its
  // arguments (the last one is the word under the cursor) and prints COMPREPLY one a line: what
  // bash does on <TAB>.
  void SetUp() override {
    const test::CliResult r = Run("completion bash > " + dir_.File("recloop.bash"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(dir_.File("complete.sh")) << "source \"$1\" || exit 3\n"
                                               "shift\n"
                                               "complete -p recloop >/dev/null || exit 4\n"
                                               "COMP_WORDS=(\"$@\")\n"
                                               "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                                               "COMP_LINE=\"${COMP_WORDS[*]}\"\n"
                                               "_recloop\n"
                                               "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
  }

  // The completions bash offers for `words` (shell words; the last one is being completed).
  std::set<std::string> Complete(const std::string& words) {
    const test::CliResult r =
        test::RunShell("cd " + dir_.path().string() + " && bash complete.sh recloop.bash " + words,
                       dir_.File("complete.err"));
    EXPECT_EQ(r.exit_code, 0) << words << ": " << r.err;
    std::set<std::string> out;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      out.emplace(line);
    }
    return out;
  }

  test::TempDir dir_;
};

TEST_F(CliCompletion, VersionIsTheCMakeProjectVersionAndTheCommit) {
  const std::string cmake =
      test::ReadWholeFile(std::string(RECLOOP_SOURCE_DIR) + "/CMakeLists.txt");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(cmake, m, std::regex(R"(project\(recloop VERSION ([0-9.]+))")));
  const std::string version = m[1];

  const test::CliResult r = Run("--version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch v;
  ASSERT_TRUE(
      std::regex_match(r.out, v, std::regex(R"(recloop ([0-9.]+)( \(git ([0-9a-f]+)\))?\n)")))
      << r.out;
  EXPECT_EQ(v[1], version);
  // Built from a git checkout: the commit shown is the checkout's HEAD (CMake re-runs when it
  // moves).
  const test::CliResult head = test::RunShell(
      "git -C " + std::string(RECLOOP_SOURCE_DIR) + " rev-parse HEAD", dir_.File("git.err"));
  if (head.exit_code == 0) {
    ASSERT_TRUE(v[3].matched) << "no commit in: " << r.out;
    EXPECT_EQ(head.out.rfind(v[3].str(), 0), 0u) << r.out << " vs HEAD " << head.out;
  }
}

TEST_F(CliCompletion, BashScriptIsValidBash) {
  const test::CliResult r =
      test::RunShell("bash -n " + dir_.File("recloop.bash"), dir_.File("bash.err"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const test::CliResult unknown = Run("completion fish");
  EXPECT_NE(unknown.exit_code, 0);
}

TEST_F(CliCompletion, CompletesSubcommandsAndTheirFlags) {
  EXPECT_EQ(Complete("recloop tr"), std::set<std::string>({"train"}));
  EXPECT_EQ(Complete("recloop train --da"), std::set<std::string>({"--data"}));
  // Every subcommand of --help at the root, and nested ones under theirs.
  const std::set<std::string> root = Complete("recloop ''");
  for (const char* sub :
       {"generate", "train", "tune", "eval", "events", "catalog", "model", "demo", "recommend",
        "similar", "serve", "keys", "experiments", "replay", "completion"}) {
    EXPECT_TRUE(root.count(sub)) << sub;
  }
  EXPECT_EQ(Complete("recloop keys ''"), std::set<std::string>({"hash"}));
  EXPECT_EQ(Complete("recloop keys hash --sc"), std::set<std::string>({"--scopes"}));
  EXPECT_EQ(Complete("recloop --vers"), std::set<std::string>({"--version"}));
}

TEST_F(CliCompletion, SkipsOptionValuesAndCompletesFilesAfterThem) {
  // --threads takes a value: `train` after it is still the subcommand.
  EXPECT_EQ(Complete("recloop --threads 2 tr"), std::set<std::string>({"train"}));
  // The value of --data is a file name, and the flags after it are still train's. A word that
  // merely looks like a subcommand (`serve` as --out's value) does not descend into it.
  std::ofstream(dir_.File("ratings.csv")) << "u,i,1\n";
  EXPECT_EQ(Complete("recloop train --data rat"), std::set<std::string>({"ratings.csv"}));
  EXPECT_EQ(Complete("recloop train --data ratings.csv --out serve --feed"),
            std::set<std::string>({"--feedback"}));
  // A flag that takes no value does not swallow the next word; --config falls through to serve.
  EXPECT_TRUE(Complete("recloop serve --help --con").count("--config"));
}

}  // namespace
}  // namespace recloop
