// `recloop keys hash`: the key-file line of a secret read from stdin (never from the command
// line, where ps and shell history would keep it).
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "serving/api_keys.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

struct KeysHashCommand {
  std::string name = "NAME";
  std::string scopes = "feedback";
};

int RunKeysHash(const KeysHashCommand& cmd) {
  std::string secret(std::istreambuf_iterator<char>(std::cin), {});
  // A trailing newline (echo, a file) is not part of the key, as --api-key-file reads it.
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return Fail(absl::InvalidArgumentError("keys hash: no key on stdin"));
  const std::string line = cmd.name + " " + cmd.scopes + " " + Sha256Hex(secret);
  if (absl::Status s = ParseKeyFile(line).status(); !s.ok()) return Fail(s);
  std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

Subcommand AddKeysCommand(CLI::App* app) {
  auto cmd = std::make_shared<KeysHashCommand>();
  CLI::App* keys = app->add_subcommand("keys", "API keys of `recloop serve --key-file`");
  keys->require_subcommand(1);
  CLI::App* hash = keys->add_subcommand(
      "hash", "Print the key-file line (NAME SCOPES SHA256HEX) of the key read from stdin");
  hash->add_option("--name", cmd->name, "The key's name (logs, /metrics)")->capture_default_str();
  hash->add_option("--scopes", cmd->scopes,
                   "Comma-separated: read, feedback, catalog, erase, admin")
      ->capture_default_str();
  return {keys, [cmd] { return RunKeysHash(*cmd); }};
}

}  // namespace recloop
