// Runs the `recloop` binary as a user would, for the command-line tests (cli_test, tune_test).
// The including target defines RECLOOP_BINARY, the path of the binary under test.
#ifndef RECLOOP_TESTS_TOOLS_CLI_RUNNER_H_
#define RECLOOP_TESTS_TOOLS_CLI_RUNNER_H_

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"

namespace recloop::test {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The whole content of a file ("" if it cannot be read).
inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs COMMAND in a shell (RunShell) or `recloop ARGS` (ARGS as a shell would split them): stdout
// captured, stderr through `err_file`.
inline CliResult RunShell(const std::string& command, const std::string& err_file) {
  const std::string cmd = command + " 2>" + err_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = ReadWholeFile(err_file);
  return r;
}

inline CliResult RunRecloop(const std::string& args, const std::string& err_file) {
  return RunShell(std::string(RECLOOP_BINARY) + " " + args, err_file);
}

// The last line of stdout parsed as JSON.
inline nlohmann::json LastJsonLine(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nlohmann::json::parse(nl == std::string::npos ? s : s.substr(nl + 1));
}

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_TOOLS_CLI_RUNNER_H_
