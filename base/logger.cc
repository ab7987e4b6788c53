#include "base/logger.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace recloop {
namespace {

class DiscardingLogger : public Logger {
 public:
  void Log(LogLevel, std::string_view) override {}
};

std::string_view LevelTag(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "";
    case LogLevel::kWarning:
      return "warning: ";
    case LogLevel::kError:
      return "error: ";
  }
  return "";
}

}  // namespace

void StderrLogger::Log(LogLevel level, std::string_view line) {
  // One write per line so that lines of concurrent threads do not interleave.
  const std::string out = absl::StrCat(prefix_, std::string(LevelTag(level)), std::string(line), "\n");
  std::fwrite(out.data(), 1, out.size(), stderr);
}

Logger* StderrLog() {
  static Logger* const log = new StderrLogger("recloop: ");
  return log;
}

Logger* NullLog() {
  static Logger* const log = new DiscardingLogger();
  return log;
}

void CapturingLogger::Log(LogLevel level, std::string_view line) {
  std::lock_guard<std::mutex> lock(mu_);
  // Debian's Abseil has its own absl::string_view: StrCat takes std::strings here.
  lines_.push_back(absl::StrCat(std::string(LevelTag(level)), std::string(line)));
}

std::vector<std::string> CapturingLogger::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

}  // namespace recloop
