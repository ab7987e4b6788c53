// RateLimiter: token buckets keyed by a name (an API key's name, a client address), for the
// server's per-key and per-address request limits (issue 23, "limits that hold against real
// clients"). Each key's bucket holds up to `burst` tokens and refills at `rate` tokens a second;
// a request takes one token or is refused with the whole seconds until one is back.
//
// Memory is bounded: a bucket that has refilled completely is the same as no bucket, so idle
// buckets are dropped, and at most `max_keys` buckets are tracked. When that many keys are
// active at once, the least recently refilled eighth is dropped (those keys start again with a
// full bucket): an attacker with many addresses can reset buckets, never grow the table.
//
// ClientAddressKey maps an address to the key its limit is counted under (an IPv6 client by
// its /64, the block one subscriber gets); ClientAddress picks the address of a request,
// honouring X-Forwarded-For only from trusted proxies.
#ifndef RECLOOP_SERVING_RATE_LIMITER_H_
#define RECLOOP_SERVING_RATE_LIMITER_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "serving/http.h"

namespace recloop {

struct RateLimiterOptions {
  // Tokens added per second; 0 = no limit (Admit always allows).
  double rate = 0;
  // Most tokens a bucket holds: the requests a key may send at once after being idle.
  // 0 = equal to rate (at least 1).
  double burst = 0;
  // Buckets tracked at most (about 100 bytes each with its key).
  size_t max_keys = 100'000;
};

class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `now`: the clock (tests inject one); null = std::chrono::steady_clock::now.
  // Errors: none; Validate first.
  explicit RateLimiter(RateLimiterOptions options, Clock now = nullptr);

  // InvalidArgument naming the bad field (a negative or non-finite rate or burst, max_keys 0).
  static absl::Status Validate(const RateLimiterOptions& options);

  bool enabled() const { return rate_ > 0; }

  struct Decision {
    bool allowed = true;
    int retry_after_seconds = 0;  // when refused: whole seconds until a token is back (>= 1)
  };
  // Takes a token from `key`'s bucket. Thread-safe.
  Decision Admit(std::string_view key);

  // Buckets tracked now. Thread-safe.
  size_t size() const;

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point refilled;
  };
  struct Shard {
    mutable std::mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  // Makes room in a full shard: drops its full buckets, then, if that freed less than an
  // eighth, its least recently refilled eighth.
  void Evict(Shard& shard, std::chrono::steady_clock::time_point now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const double rate_;
  const double burst_;
  const size_t max_per_shard_;
  const Clock now_;
  std::array<Shard, kShards> shards_;
};

// The key an address's limit is counted under: an IPv4 address as is; an IPv6 address by its
// /64 prefix (e.g. "2001:db8:1:2::/64"), an IPv4-mapped one as its IPv4 address; anything else
// (not an IP address) as is.
std::string ClientAddressKey(std::string_view address);

// The client address of `request`: request.remote_address (the peer), or, when the peer is one
// of `trusted_proxies` (exact addresses) and the request has X-Forwarded-For, the last address
// of its last X-Forwarded-For field (the one the proxy appended); the peer if that is not an IP
// address.
std::string ClientAddress(const HttpRequest& request,
                          const std::vector<std::string>& trusted_proxies);

// Whether `address` is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z).
bool IsLoopbackAddress(std::string_view address);

}  // namespace recloop

#endif  // RECLOOP_SERVING_RATE_LIMITER_H_
