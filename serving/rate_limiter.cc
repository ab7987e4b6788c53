#include "serving/rate_limiter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace recloop {

using SteadyClock = std::chrono::steady_clock;

RateLimiter::RateLimiter(RateLimiterOptions options, Clock now)
    : rate_(options.rate),
      burst_(options.burst > 0 ? options.burst : std::max(1.0, options.rate)),
      max_per_shard_(std::max<size_t>(1, options.max_keys / kShards)),
      now_(now ? std::move(now) : Clock([] { return SteadyClock::now(); })) {}

absl::Status RateLimiter::Validate(const RateLimiterOptions& options) {
  if (!std::isfinite(options.rate) || options.rate < 0) {
    return absl::InvalidArgumentError("rate limit: the rate must be a finite number >= 0");
  }
  if (!std::isfinite(options.burst) || options.burst < 0) {
    return absl::InvalidArgumentError("rate limit: the burst must be a finite number >= 0");
  }
  if (options.max_keys == 0) {
    return absl::InvalidArgumentError("rate limit: max_keys must be >= 1");
  }
  return absl::OkStatus();
}

RateLimiter::Decision RateLimiter::Admit(std::string_view key) {
  if (rate_ <= 0) return {};
  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  const SteadyClock::time_point now = now_();
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.buckets.find(absl::string_view(key.data(), key.size()));
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= max_per_shard_) Evict(shard, now);
    it = shard.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::max(0.0, std::chrono::duration<double>(now - b.refilled).count());
  b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
  b.refilled = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return {};
  }
  const double wait = (1 - b.tokens) / rate_;
  return {false, std::max(1, static_cast<int>(std::ceil(wait)))};
}

void RateLimiter::Evict(Shard& shard, SteadyClock::time_point now) {
  // A bucket that would be full by now is the same as no bucket.
  absl::erase_if(shard.buckets, [&](const auto& entry) {
    const Bucket& b = entry.second;
    return b.tokens + std::chrono::duration<double>(now - b.refilled).count() * rate_ >= burst_;
  });
  const size_t target = max_per_shard_ - std::max<size_t>(1, max_per_shard_ / 8);
  if (shard.buckets.size() <= target) return;
  // Still full of active buckets: drop the least recently refilled down to the target.
  std::vector<SteadyClock::time_point> times;
  times.reserve(shard.buckets.size());
  for (const auto& [key, b] : shard.buckets) times.push_back(b.refilled);
  const size_t drop = shard.buckets.size() - target;
  std::nth_element(times.begin(), times.begin() + (drop - 1), times.end());
  const SteadyClock::time_point cutoff = times[drop - 1];
  size_t dropped = 0;
  absl::erase_if(shard.buckets, [&](const auto& entry) {
    if (dropped < drop && entry.second.refilled <= cutoff) {
      ++dropped;
      return true;
    }
    return false;
  });
}

size_t RateLimiter::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.buckets.size();
  }
  return n;
}

namespace {

// `s` without surrounding spaces and, for an IPv6 address, brackets.
std::string_view Bare(std::string_view s) {
  const absl::string_view stripped =
      absl::StripAsciiWhitespace(absl::string_view(s.data(), s.size()));
  s = std::string_view(stripped.data(), stripped.size());
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  return s;
}

bool ParseV4(std::string_view s, in_addr* out) {
  if (s.size() > INET_ADDRSTRLEN) return false;
  const std::string z(s);
  return inet_pton(AF_INET, z.c_str(), out) == 1;
}

bool ParseV6(std::string_view s, in6_addr* out) {
  if (s.size() > INET6_ADDRSTRLEN) return false;
  const std::string z(s);
  return inet_pton(AF_INET6, z.c_str(), out) == 1;
}

bool IsV4Mapped(const in6_addr& a) {
  static constexpr unsigned char kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kPrefix, kPrefix + 12, a.s6_addr);
}

std::string V4String(const unsigned char* bytes) {
  return absl::StrCat(bytes[0], ".", bytes[1], ".", bytes[2], ".", bytes[3]);
}

bool IsIpAddress(std::string_view s) {
  in_addr v4;
  in6_addr v6;
  return ParseV4(s, &v4) || ParseV6(s, &v6);
}

}  // namespace

std::string ClientAddressKey(std::string_view address) {
  address = Bare(address);
  in6_addr v6;
  if (!ParseV6(address, &v6)) return std::string(address);
  if (IsV4Mapped(v6)) return V4String(v6.s6_addr + 12);
  in6_addr prefix{};
  std::copy(v6.s6_addr, v6.s6_addr + 8, prefix.s6_addr);
  char text[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &prefix, text, sizeof(text)) == nullptr) return std::string(address);
  return absl::StrCat(text, "/64");
}

namespace {

// `address` without brackets or spaces, an IPv4-mapped IPv6 address as its IPv4 address (a
// dual-stack listener reports IPv4 peers so).
std::string Canonical(std::string_view address) {
  address = Bare(address);
  in6_addr v6;
  if (ParseV6(address, &v6) && IsV4Mapped(v6)) return V4String(v6.s6_addr + 12);
  return std::string(address);
}

}  // namespace

std::string ClientAddress(const HttpRequest& request,
                          const std::vector<std::string>& trusted_proxies) {
  const std::string peer = Canonical(request.remote_address);
  const bool trusted = !peer.empty() && std::any_of(trusted_proxies.begin(), trusted_proxies.end(),
                                                    [&](const std::string& proxy) {
                                                      return Canonical(proxy) == peer;
                                                    });
  if (!trusted) return peer;
  std::string_view forwarded;  // the last X-Forwarded-For field
  for (const auto& [name, value] : request.headers) {
    if (absl::EqualsIgnoreCase(name, "X-Forwarded-For")) forwarded = value;
  }
  const size_t comma = forwarded.rfind(',');
  const std::string_view last =
      Bare(comma == std::string_view::npos ? forwarded : forwarded.substr(comma + 1));
  if (!IsIpAddress(last)) return peer;
  return Canonical(last);
}

bool IsLoopbackAddress(std::string_view address) {
  address = Bare(address);
  in_addr v4;
  if (ParseV4(address, &v4)) return reinterpret_cast<const unsigned char*>(&v4)[0] == 127;
  in6_addr v6;
  if (!ParseV6(address, &v6)) return false;
  if (IsV4Mapped(v6)) return v6.s6_addr[12] == 127;
  static constexpr unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::equal(kLoopback, kLoopback + 16, v6.s6_addr);
}

}  // namespace recloop
