// Issue 23, "secure by default", without sockets: the key file and its hashes, the loopback
// rule, the key file created at first start, every route against every key scope (the router's
// one Authorize), the per-key and refusal counters of /metrics, and the audit trail of writes.
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "base/logger.h"
#include "data/event_store.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "serving/api.h"
#include "serving/api_keys.h"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "tests/engine/random_model.h"
#include "tests/serving/api_request.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using test::ErrorCode;

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ApiKeysFile, ParsesNamesScopesAndDigestsAndSkipsComments) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string text = "# storefront and operators\n\nshop feedback " + Sha256Hex("s1") +
                           "\nops  read,admin,erase\t" + Sha256Hex("s2") + "  # on call\n";
  ASSERT_OK_AND_ASSIGN(const std::vector<ApiKey> keys, ParseKeyFile(text));
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].name, "shop");
  EXPECT_EQ(keys[0].scopes, kScopeFeedback);
  EXPECT_EQ(keys[0].digest, Sha256("s1"));
  EXPECT_EQ(keys[1].scopes, kScopeRead | kScopeAdmin | kScopeErase);

  const std::string digest = Sha256Hex("x");
  for (const std::string& bad : std::vector<std::string>{
           "shop feedback", "shop writes " + digest, "shop feedback " + digest.substr(1),
           "shop feedback zz" + digest.substr(2), "a read " + digest + "\na admin " + digest}) {
    SCOPED_TRACE(bad);
    const auto parsed = ParseKeyFile(bad);
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.status().message().find("line"), std::string::npos);
  }
}

TEST(ApiKeysFile, FindsTheKeyOfASecretAndOnlyWhenEnabled) {
  ApiKeys keys(true, {LegacyApiKey("legacy"), {"shop", kScopeFeedback, Sha256("s1")}});
  ASSERT_TRUE(keys.Find("s1").has_value());
  EXPECT_EQ(keys.Find("s1")->name, "shop");
  EXPECT_EQ(keys.Find("legacy")->scopes, static_cast<uint32_t>(kAllScopes));
  EXPECT_FALSE(keys.Find("s2").has_value());
  EXPECT_FALSE(keys.Find("").has_value());
  keys.Replace({{"shop2", kScopeFeedback, Sha256("s2")}});
  EXPECT_FALSE(keys.Find("s1").has_value());
  EXPECT_EQ(keys.Find("s2")->name, "shop2");
  EXPECT_FALSE(ApiKeys(false, {LegacyApiKey("legacy")}).Find("legacy").has_value());
}

TEST(ApiKeysFile, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "example.com", "",
                           "localhost.example.com", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(ApiKeysFile, CreatesAPrivateRandomKeyOnceAndNeverOverwrites) {
  test::TempDir dir;
  const std::string path = dir.File("api-key");
  ASSERT_OK_AND_ASSIGN(const bool created, CreateApiKeyFile(path));
  EXPECT_TRUE(created);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string key = ReadWhole(path);
  ASSERT_EQ(key.size(), 65u);  // 32 random bytes in hex, and a newline
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), 64u);
  ASSERT_OK_AND_ASSIGN(const bool again, CreateApiKeyFile(path));
  EXPECT_FALSE(again);
  EXPECT_EQ(ReadWhole(path), key);
  const std::string other = dir.File("other");
  ASSERT_OK(CreateApiKeyFile(other).status());
  EXPECT_NE(ReadWhole(other), key);
}

// One request of each non-public route and the key scope it needs ("" for the read routes).
struct ScopedRoute {
  std::string method;
  std::string target;
  std::string body;
  uint32_t scope;
};

std::vector<ScopedRoute> ScopedRoutes() {
  const std::string feedback = R"([{"user":"u1","item":"i2","type":"view"}])";
  const std::string item = R"({"title":"Kettle","categories":["Kitchen"]})";
  return {
      {"GET", "/metrics", "", kScopeRead},
      {"GET", "/v1/users?n=2", "", kScopeRead},
      {"GET", "/v1/model", "", kScopeRead},
      {"GET", "/v1/users/u1/feedback", "", kScopeRead},
      {"GET", "/v1/users/u1/recommendations", "", kScopeRead},
      {"GET", "/v1/items/i1/similar", "", kScopeRead},
      {"GET", "/v1/popular", "", kScopeRead},
      {"GET", "/v1/items/i1", "", kScopeRead},
      {"GET", "/v1/admin/retrain", "", kScopeAdmin},
      {"POST", "/v1/admin/retrain", "", kScopeAdmin},
      {"POST", "/v1/admin/rollback", "", kScopeAdmin},
      {"POST", "/v1/feedback", feedback, kScopeFeedback},
      {"DELETE", "/v1/users/u1", "", kScopeErase},
      {"PUT", "/v1/items/i3", item, kScopeCatalog},
      {"DELETE", "/v1/items/i4", "", kScopeCatalog},
  };
}

constexpr uint32_t kEachScope[] = {kScopeRead, kScopeFeedback, kScopeCatalog, kScopeErase,
                                   kScopeAdmin};

class ScopedKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
    ASSERT_OK(SaveModel(model, dir_.File("models")).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({dir_.File("models"), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    // One key per scope, its secret and name the scope's bit ("key1", "key2", ...).
    std::vector<ApiKey> list;
    for (uint32_t s : kEachScope) list.push_back({Name(s), s, Sha256(Secret(s))});
    keys_ = std::make_unique<ApiKeys>(true, std::move(list));
  }

  static std::string Name(uint32_t scope) { return "key" + std::to_string(scope); }
  static std::string Secret(uint32_t scope) { return "secret-" + std::to_string(scope); }

  void Configure(bool auth_reads) {
    ApiOptions options;
    options.auth_reads = auth_reads;
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(),
                                             .metrics = &metrics_,
                                             .events = events_.get(),
                                             .keys = keys_.get(),
                                             .log = &log_},
                                 options);
  }

  HttpResponse Call(const ScopedRoute& route, const std::string& secret) const {
    return api_->Handle(test::ApiRequest(route.method, route.target, secret, route.body));
  }

  test::TempDir dir_;
  Metrics metrics_;
  CapturingLogger log_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<ApiKeys> keys_;
  std::unique_ptr<Api> api_;
};

// Every route against every key: its own scope passes, any other is 403 forbidden, no key or an
// unknown one is 401.
TEST_F(ScopedKeysTest, EachScopeIsAllowedOnItsRoutesAndRefusedOnTheOthers) {
  Configure(/*auth_reads=*/true);
  for (const ScopedRoute& route : ScopedRoutes()) {
    SCOPED_TRACE(route.method + " " + route.target);
    for (uint32_t scope : kEachScope) {
      SCOPED_TRACE(Name(scope));
      const HttpResponse r = Call(route, Secret(scope));
      if (scope == route.scope) {
        EXPECT_NE(r.status, 401) << r.body;
        EXPECT_NE(r.status, 403) << r.body;
      } else {
        EXPECT_EQ(r.status, 403) << r.body;
        EXPECT_EQ(ErrorCode(r), "forbidden");
      }
    }
    for (const std::string secret : {"", "secret-unknown"}) {
      const HttpResponse r = Call(route, secret);
      EXPECT_EQ(r.status, 401) << r.body;
      EXPECT_EQ(ErrorCode(r), "unauthorized");
    }
  }
}

// Reads stay open without --auth-reads, whatever key is given; the writes keep their scopes.
TEST_F(ScopedKeysTest, ReadsAreOpenWithoutAuthReadsAndAFeedbackKeyOnlyPostsEvents) {
  Configure(/*auth_reads=*/false);
  for (const ScopedRoute& route : ScopedRoutes()) {
    SCOPED_TRACE(route.method + " " + route.target);
    const HttpResponse anonymous = Call(route, "");
    const HttpResponse shop = Call(route, Secret(kScopeFeedback));
    if (route.scope == kScopeRead) {
      EXPECT_NE(anonymous.status, 401);
      EXPECT_NE(shop.status, 403);
    } else if (route.scope == kScopeFeedback) {
      EXPECT_EQ(anonymous.status, 401);
      EXPECT_EQ(shop.status, 200) << shop.body;
    } else {
      EXPECT_EQ(anonymous.status, 401);
      EXPECT_EQ(shop.status, 403) << shop.body;
    }
  }
}

TEST_F(ScopedKeysTest, MetricsCountRequestsPerKeyAndRefusals) {
  Configure(/*auth_reads=*/false);
  const std::vector<ScopedRoute> routes = ScopedRoutes();
  const ScopedRoute& post = routes[11];
  ASSERT_EQ(post.target, "/v1/feedback");
  EXPECT_EQ(Call(post, Secret(kScopeFeedback)).status, 200);
  EXPECT_EQ(Call(post, Secret(kScopeFeedback)).status, 200);
  EXPECT_EQ(Call(post, Secret(kScopeAdmin)).status, 403);
  EXPECT_EQ(Call(post, "nope").status, 401);
  const std::string text = metrics_.Render({});
  EXPECT_NE(text.find("recloop_http_requests_by_key_total{key=\"key2\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("recloop_http_requests_by_key_total{key=\"key16\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("recloop_http_auth_refusals_total{status=\"401\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("recloop_http_auth_refusals_total{status=\"403\"} 1\n"), std::string::npos);
}

// Catalogue writes, erasures and admin calls leave one audit line each, allowed or not;
// feedback and reads leave none.
TEST_F(ScopedKeysTest, AuditLogsWritesErasuresAndAdminCallsWithKeyTimeRouteTargetAndStatus) {
  Configure(/*auth_reads=*/false);
  const std::vector<ScopedRoute> routes = ScopedRoutes();
  for (const ScopedRoute& route : routes) {
    if (route.scope == kScopeRead || route.scope == kScopeFeedback)
      Call(route, Secret(route.scope));
  }
  EXPECT_TRUE(log_.lines().empty());
  const ScopedRoute& put = routes[13];
  const ScopedRoute& erase = routes[12];
  ASSERT_EQ(put.method, "PUT");
  EXPECT_EQ(Call(put, Secret(kScopeCatalog)).status, 200);
  EXPECT_EQ(Call(erase, Secret(kScopeFeedback)).status, 403);
  EXPECT_EQ(Call(routes[10], "").status, 401);
  const std::vector<std::string> lines = log_.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("audit key=key4 time=20"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("Z route=\"PUT /v1/items/{item}\" target=/v1/items/i3 status=200"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("key=key2 "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("route=\"DELETE /v1/users/{user}\" target=/v1/users/u1 status=403"),
            std::string::npos)
      << lines[1];
  EXPECT_NE(lines[2].find("key=- "), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("route=\"POST /v1/admin/rollback\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("status=401"), std::string::npos) << lines[2];
}

}  // namespace
}  // namespace recloop
