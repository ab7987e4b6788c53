// `recloop serve`, which `recloop demo --serve` runs too.
#ifndef RECLOOP_TOOLS_SERVE_COMMAND_H_
#define RECLOOP_TOOLS_SERVE_COMMAND_H_

#include <cstdint>
#include <string>

#include "serving/serve.h"

namespace recloop {

struct ServeCommand {
  ServeOptions serve;
  std::string api_key_file;          // the API key's file; else RECLOOP_API_KEY; else no legacy key
  bool create_api_key_file = false;  // create api_key_file with a new key if it is missing
  int64_t idle_timeout_ms = 30'000;
  int64_t read_timeout_ms = 10'000;
  int64_t drain_timeout_ms = 10'000;
};

// Serves until SIGTERM or SIGINT. Returns the exit code.
int RunServeCommand(ServeCommand cmd);

}  // namespace recloop

#endif  // RECLOOP_TOOLS_SERVE_COMMAND_H_
