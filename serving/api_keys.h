// ApiKeys: the server's credentials and the rules around them (issue 23, "secure by default").
// A key is a name, a set of scopes and the SHA-256 digest of its secret: the server never keeps
// the secrets of a key file, only their digests, and compares digests in constant time.
//
// Key file (`recloop serve --key-file FILE`), one key a line, `#` starts a comment:
//
//   # NAME     SCOPES            SHA256HEX (of the secret: `recloop keys hash`, or
//   storefront feedback          9f86d0...      printf %s SECRET | sha256sum)
//   ops        read,admin        60303a...
//
// Scopes: read, feedback, catalog, erase, admin (comma-separated, no spaces). The legacy single
// key (--api-key-file, $RECLOOP_API_KEY) is a key named "api-key" with every scope.
#ifndef RECLOOP_SERVING_API_KEYS_H_
#define RECLOOP_SERVING_API_KEYS_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"

namespace recloop {

// What a key may do, as bits (a route's Scope, serving/handlers/handlers.h, maps to one).
enum KeyScope : uint32_t {
  kScopeRead = 1u << 0,      // GET routes when reads are authenticated (--auth-reads)
  kScopeFeedback = 1u << 1,  // POST /v1/feedback
  kScopeCatalog = 1u << 2,   // PUT, DELETE /v1/items/{item}
  kScopeErase = 1u << 3,     // DELETE /v1/users/{user}
  kScopeAdmin = 1u << 4,     // /v1/admin/*
  kAllScopes = (1u << 5) - 1,
};

using KeyDigest = std::array<unsigned char, 32>;

struct ApiKey {
  std::string name;     // shown in logs and /metrics, never secret
  uint32_t scopes = 0;  // KeyScope bits
  KeyDigest digest{};   // SHA-256 of the secret
};

// SHA-256 of `data`, raw and as lowercase hex.
KeyDigest Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);

// The legacy single key (every scope), named "api-key".
ApiKey LegacyApiKey(std::string_view secret);

// Parses a key file's text. Errors: InvalidArgument naming the line and what is wrong with it
// (field count, unknown scope, a digest that is not 64 hex digits, a repeated name).
absl::StatusOr<std::vector<ApiKey>> ParseKeyFile(std::string_view text);
// Reads and parses the file at `path`. Errors: NotFound if it cannot be read, else ParseKeyFile's.
absl::StatusOr<std::vector<ApiKey>> ReadKeyFile(const std::string& path);

// Creates `path` (mode 0600, exclusively) holding a new random key (32 bytes from OpenSSL's
// RAND_bytes, hex) and a newline. Returns true if it created the file, false if it already
// existed (left untouched). Errors: Internal if the random generator fails, else the I/O error.
absl::StatusOr<bool> CreateApiKeyFile(const std::string& path);

// Whether `host` names this machine only: 127.0.0.0/8, ::1 (with or without brackets) or
// "localhost".
bool IsLoopbackHost(std::string_view host);

// The keys a server accepts, replaceable while it serves (SIGHUP re-reads the key file).
// Thread safety: every method may be called concurrently.
class ApiKeys {
 public:
  // `enabled`: whether requests must authenticate (false: no key was configured at all, and
  // Find always returns nullopt).
  ApiKeys(bool enabled, std::vector<ApiKey> keys);

  bool enabled() const { return enabled_; }
  // Replaces the keys (the legacy key, if any, must be among `keys`).
  void Replace(std::vector<ApiKey> keys);
  size_t size() const;

  struct Match {
    std::string name;
    uint32_t scopes = 0;
  };
  // The key whose secret is `secret`, or nullopt. Compares the digest with every key's in
  // constant time (CRYPTO_memcmp), without stopping at the first match.
  std::optional<Match> Find(std::string_view secret) const;

 private:
  const bool enabled_;
  mutable std::mutex mu_;
  std::vector<ApiKey> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_API_KEYS_H_
