// The token buckets of serving/rate_limiter.h on an injected clock (no sleeps, no timing), the
// bound on their memory, the address keys (IPv6 by /64) and X-Forwarded-For from trusted proxies
// only; and the JSON shape scan of serving/json_limits.h.
#include "serving/rate_limiter.h"

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "serving/json_limits.h"

namespace recloop {
namespace {

using std::chrono::milliseconds;

class FakeClock {
 public:
  RateLimiter::Clock clock() {
    return [this] { return now_; };
  }
  void Advance(milliseconds d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point now_{};
};

TEST(RateLimiter, BurstThenRefusedWithRetryAfterThenRefills) {
  FakeClock clock;
  RateLimiter limiter({.rate = 1, .burst = 3}, clock.clock());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a").allowed) << i;
  const RateLimiter::Decision refused = limiter.Admit("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_seconds, 1);
  EXPECT_TRUE(limiter.Admit("b").allowed);  // another key has its own bucket
  clock.Advance(milliseconds(500));
  EXPECT_FALSE(limiter.Admit("a").allowed);  // half a token
  clock.Advance(milliseconds(500));
  EXPECT_TRUE(limiter.Admit("a").allowed);  // one second: one token
  EXPECT_FALSE(limiter.Admit("a").allowed);
  clock.Advance(std::chrono::seconds(60));  // refills up to the burst, never beyond
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a").allowed) << i;
  EXPECT_FALSE(limiter.Admit("a").allowed);
}

TEST(RateLimiter, RetryAfterIsWholeSecondsUntilATokenIsBack) {
  FakeClock clock;
  RateLimiter limiter({.rate = 0.25, .burst = 1}, clock.clock());
  EXPECT_TRUE(limiter.Admit("a").allowed);
  EXPECT_EQ(limiter.Admit("a").retry_after_seconds, 4);
  clock.Advance(milliseconds(2500));
  EXPECT_EQ(limiter.Admit("a").retry_after_seconds, 2);  // 1.5 s rounded up
}

TEST(RateLimiter, BurstZeroMeansTheRateAndRateZeroIsOff) {
  FakeClock clock;
  RateLimiter limiter({.rate = 2}, clock.clock());
  EXPECT_TRUE(limiter.Admit("a").allowed);
  EXPECT_TRUE(limiter.Admit("a").allowed);
  EXPECT_FALSE(limiter.Admit("a").allowed);
  RateLimiter off({}, clock.clock());
  EXPECT_FALSE(off.enabled());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(off.Admit("a").allowed);
  EXPECT_EQ(off.size(), 0u);
}

TEST(RateLimiter, ValidateNamesTheBadField) {
  EXPECT_TRUE(RateLimiter::Validate({.rate = 5, .burst = 10}).ok());
  EXPECT_FALSE(RateLimiter::Validate({.rate = -1}).ok());
  EXPECT_FALSE(RateLimiter::Validate({.rate = 1, .burst = -1}).ok());
  EXPECT_FALSE(RateLimiter::Validate({.rate = 1, .max_keys = 0}).ok());
  EXPECT_NE(RateLimiter::Validate({.rate = 1, .burst = -1}).message().find("burst"),
            std::string::npos);
}

TEST(RateLimiter, MemoryStaysBoundedAgainstManyKeys) {
  FakeClock clock;
  RateLimiter limiter({.rate = 1, .burst = 5, .max_keys = 1600}, clock.clock());
  // An attacker with a million addresses, all active at once: the table never grows past the cap.
  for (int i = 0; i < 1'000'000; ++i) {
    limiter.Admit(absl::StrCat("10.", i / 65536, ".", (i / 256) % 256, ".", i % 256));
    if (i % 100'000 == 0) {
      ASSERT_LE(limiter.size(), 1600u) << i;
    }
  }
  EXPECT_LE(limiter.size(), 1600u);
  EXPECT_GT(limiter.size(), 1000u);
}

TEST(RateLimiter, IdleBucketsMakeRoomAndAnActiveBucketKeepsItsState) {
  FakeClock clock;
  RateLimiter limiter({.rate = 1, .burst = 2, .max_keys = 16 * 8}, clock.clock());
  // Far more keys than the table holds, each once: every shard fills up.
  for (int i = 0; i < 2000; ++i) limiter.Admit(absl::StrCat("idle", i));
  EXPECT_LE(limiter.size(), 16u * 8);
  // They are full again after a second and a half: the same as no bucket, dropped to make room.
  clock.Advance(milliseconds(1500));
  while (limiter.Admit("busy").allowed) {
  }
  clock.Advance(milliseconds(500));
  for (int i = 0; i < 5; ++i) limiter.Admit(absl::StrCat("new", i));
  // The busy key holds half a token: refused (a bucket started afresh would allow it).
  EXPECT_FALSE(limiter.Admit("busy").allowed);
  EXPECT_LE(limiter.size(), 16u * 8);
}

TEST(ClientAddressKey, Ipv4AsIsIpv6ByItsSlash64) {
  EXPECT_EQ(ClientAddressKey("203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(ClientAddressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientAddressKey("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientAddressKey("[2001:db8:1:3::1]"), "2001:db8:1:3::/64");
  EXPECT_EQ(ClientAddressKey("::ffff:198.51.100.4"), "198.51.100.4");
  EXPECT_EQ(ClientAddressKey("not-an-address"), "not-an-address");
}

TEST(ClientAddress, ForwardedForOnlyFromATrustedProxy) {
  HttpRequest r;
  r.remote_address = "10.0.0.2";
  r.headers = {{"X-Forwarded-For", "1.1.1.1, 198.51.100.9"}};
  EXPECT_EQ(ClientAddress(r, {}), "10.0.0.2");  // off by default: the header is forgeable
  EXPECT_EQ(ClientAddress(r, {"10.0.0.3"}), "10.0.0.2");
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "198.51.100.9");  // the hop the proxy appended
  r.headers.emplace_back("x-forwarded-for", "203.0.113.5");   // the last field counts
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "203.0.113.5");
  r.headers = {{"X-Forwarded-For", "1.1.1.1, garbage"}};
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "10.0.0.2");  // not an address: the peer
  r.headers = {};
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "10.0.0.2");
  r.remote_address = "::ffff:10.0.0.2";  // a dual-stack listener's IPv4 peer
  r.headers = {{"X-Forwarded-For", "2001:db8::7"}};
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "2001:db8::7");
  r.remote_address = "";
  EXPECT_EQ(ClientAddress(r, {"10.0.0.2"}), "");
}

TEST(ClientAddress, Loopback) {
  for (const char* a : {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a : {"10.0.0.1", "::", "::2", "", "localhost", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
}

TEST(JsonShape, RefusesDeepNestingAndLargeContainersBeforeParsing) {
  const JsonLimits limits{.max_depth = 4, .max_elements = 3, .max_root_elements = 5};
  EXPECT_FALSE(CheckJsonShape(R"([[[[1]]]])", limits));
  const auto deep = CheckJsonShape(R"([[[[[1]]]]])", limits);
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->kind, JsonShapeError::kTooDeep);
  EXPECT_NE(deep->message.find("4"), std::string::npos);
  EXPECT_EQ(CheckJsonShape(std::string(1 << 20, '['), limits)->kind, JsonShapeError::kTooDeep);

  EXPECT_FALSE(CheckJsonShape(R"([1,2,3,4,5])", limits));
  EXPECT_EQ(CheckJsonShape(R"([1,2,3,4,5,6])", limits)->kind, JsonShapeError::kTooManyRootElements);
  EXPECT_FALSE(CheckJsonShape(R"([{"a":1,"b":2,"c":3}])", limits));
  EXPECT_EQ(CheckJsonShape(R"([{"a":1,"b":2,"c":3,"d":4}])", limits)->kind,
            JsonShapeError::kTooManyElements);
  EXPECT_EQ(CheckJsonShape(R"({"x":[1,2,3,4]})", limits)->kind, JsonShapeError::kTooManyElements);
  // Brackets and commas inside strings (escaped quotes too) are not structure.
  EXPECT_FALSE(CheckJsonShape(R"(["[[[[[[,,,,,,", "\"[[[[[[,,,,"])", limits));
  EXPECT_FALSE(CheckJsonShape(R"([])", limits));
  EXPECT_FALSE(CheckJsonShape(R"({})", limits));
  EXPECT_FALSE(CheckJsonShape(R"( [ 1 , 2 ] )", limits));
  // 0 for the root: the element cap.
  EXPECT_EQ(CheckJsonShape(R"([1,2,3,4])", {.max_depth = 4, .max_elements = 3})->kind,
            JsonShapeError::kTooManyRootElements);
}

}  // namespace
}  // namespace recloop
