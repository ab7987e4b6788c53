// Logger: where library code reports what an operator should see (a retrain's outcome, a failed
// background step), as LevelDB's Env::Logger. Library code never writes to stdout or stderr
// itself: it is handed a Logger* by whoever owns the process (the `recloop` command passes
// StderrLogger(), tests may pass a CapturingLogger or NullLogger()).
#ifndef RECLOOP_BASE_LOGGER_H_
#define RECLOOP_BASE_LOGGER_H_

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"

namespace recloop {

enum class LogLevel { kInfo, kWarning, kError };

// Thread safety: implementations must accept Log() from any number of threads at once.
class Logger {
 public:
  virtual ~Logger() = default;
  // One line (without its newline).
  virtual void Log(LogLevel level, std::string_view line) = 0;

  template <typename... Args>
  void Info(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kInfo, absl::StrFormat(format, args...));
  }
  template <typename... Args>
  void Warning(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kWarning, absl::StrFormat(format, args...));
  }
  template <typename... Args>
  void Error(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kError, absl::StrFormat(format, args...));
  }
};

// Writes each line to stderr, prefixed with `prefix` (e.g. "recloop serve: "), whole lines at a
// time. The default instance (prefix "recloop: ") lives for the whole process.
class StderrLogger : public Logger {
 public:
  explicit StderrLogger(std::string prefix) : prefix_(std::move(prefix)) {}
  void Log(LogLevel level, std::string_view line) override;

 private:
  std::string prefix_;
};

// Process-wide loggers (never destroyed, so usable from any static context).
Logger* StderrLog();  // prefix "recloop: "
Logger* NullLog();    // drops everything

// Keeps every line, for tests that check what was logged.
class CapturingLogger : public Logger {
 public:
  void Log(LogLevel level, std::string_view line) override;
  std::vector<std::string> lines() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace recloop

#endif  // RECLOOP_BASE_LOGGER_H_
