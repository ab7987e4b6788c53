#include "serving/api_keys.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace recloop {
namespace {

constexpr std::pair<std::string_view, uint32_t> kScopeNames[] = {
    {"read", kScopeRead},   {"feedback", kScopeFeedback}, {"catalog", kScopeCatalog},
    {"erase", kScopeErase}, {"admin", kScopeAdmin},
};

absl::StatusOr<uint32_t> ParseScopes(absl::string_view text) {
  uint32_t scopes = 0;
  for (absl::string_view s : absl::StrSplit(text, ',')) {
    uint32_t bit = 0;
    for (const auto& [name, b] : kScopeNames) {
      if (s == absl::string_view(name.data(), name.size())) bit = b;
    }
    if (bit == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown scope '", s, "' (known: read, feedback, catalog, erase, admin)"));
    }
    scopes |= bit;
  }
  return scopes;
}

absl::StatusOr<KeyDigest> ParseDigest(absl::string_view hex) {
  KeyDigest digest{};
  if (hex.size() != 2 * digest.size()) {
    return absl::InvalidArgumentError("the digest is not 64 hex digits (SHA-256)");
  }
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("the digest is not 64 hex digits (SHA-256)");
    }
  }
  const std::string bytes = absl::HexStringToBytes(hex);
  std::memcpy(digest.data(), bytes.data(), digest.size());
  return digest;
}

}  // namespace

KeyDigest Sha256(std::string_view data) {
  KeyDigest digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

std::string Sha256Hex(std::string_view data) {
  const KeyDigest d = Sha256(data);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

ApiKey LegacyApiKey(std::string_view secret) {
  return ApiKey{"api-key", kAllScopes, Sha256(secret)};
}

absl::StatusOr<std::vector<ApiKey>> ParseKeyFile(std::string_view text) {
  std::vector<ApiKey> keys;
  std::set<std::string> names;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto error = [line_no](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("key file line ", line_no, ": ", what));
    };
    if (fields.size() != 3) return error("want NAME SCOPES SHA256HEX");
    ApiKey key;
    key.name = std::string(fields[0]);
    auto scopes = ParseScopes(fields[1]);
    if (!scopes.ok()) return error(scopes.status().message());
    key.scopes = *scopes;
    auto digest = ParseDigest(fields[2]);
    if (!digest.ok()) return error(digest.status().message());
    key.digest = *digest;
    if (!names.insert(key.name).second) return error("the name " + key.name + " is repeated");
    keys.push_back(std::move(key));
  }
  return keys;
}

absl::StatusOr<std::vector<ApiKey>> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read the key file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto keys = ParseKeyFile(ss.str());
  if (!keys.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", keys.status().message()));
  return keys;
}

absl::StatusOr<bool> CreateApiKeyFile(const std::string& path) {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed: no key was created");
  }
  const std::string line = absl::StrCat(absl::BytesToHexString(absl::string_view(
                                            reinterpret_cast<const char*>(bytes), sizeof(bytes))),
                                        "\n");
  OPENSSL_cleanse(bytes, sizeof(bytes));
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) return false;
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool closed = close(fd) == 0;
  if (!written || !closed) {
    unlink(path.c_str());
    return absl::UnavailableError("cannot write the new key to " + path);
  }
  return true;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

ApiKeys::ApiKeys(bool enabled, std::vector<ApiKey> keys)
    : enabled_(enabled), keys_(std::move(keys)) {}

void ApiKeys::Replace(std::vector<ApiKey> keys) {
  std::lock_guard<std::mutex> lock(mu_);
  keys_ = std::move(keys);
}

size_t ApiKeys::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.size();
}

std::optional<ApiKeys::Match> ApiKeys::Find(std::string_view secret) const {
  if (!enabled_) return std::nullopt;
  const KeyDigest given = Sha256(secret);
  std::optional<Match> found;
  std::lock_guard<std::mutex> lock(mu_);
  for (const ApiKey& key : keys_) {
    if (CRYPTO_memcmp(given.data(), key.digest.data(), given.size()) == 0 && !found) {
      found = Match{key.name, key.scopes};
    }
  }
  return found;
}

}  // namespace recloop
