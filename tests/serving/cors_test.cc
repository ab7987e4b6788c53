// Issue 23, "secure by default", part 4 (browsers): CORS closed unless origins are configured,
// preflights approved for allowed origins only and without a key, the page's security headers
// and nosniff on every answer. The origin rules are checked on Cors itself; what a browser sees
// over a real socket on 127.0.0.1.
#include "serving/cors.h"

#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "serving/api.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "tests/engine/random_model.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using test::Client;
using test::Reply;

constexpr char kShop[] = "https://shop.example";

HttpRequest WithOrigin(std::string method, std::string origin) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = "/v1/popular";
  if (!origin.empty()) r.headers.emplace_back("Origin", std::move(origin));
  r.headers.emplace_back("Access-Control-Request-Method", "GET");
  return r;
}

TEST(CorsOptions, AcceptsOriginsAndStarAndRefusesAnythingElse) {
  for (const char* good : {"https://shop.example", "http://localhost:3000", "HTTPS://Shop.Example",
                           "http://127.0.0.1:8080", "http://[::1]:8080", "*"}) {
    EXPECT_TRUE(ValidateCorsOptions({.allowed_origins = {good}}).ok()) << good;
  }
  for (const char* bad :
       {"https://shop.example/", "https://shop.example/path", "shop.example", "null",
        "ftp://shop.example", "https://", "https://shop.example:", "https://shop.example:99999",
        "https://sh op.example", "", "https://*.example", "**"}) {
    const absl::Status s = ValidateCorsOptions({.allowed_origins = {bad}});
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad;
    EXPECT_NE(s.message().find(bad), std::string::npos) << s;
  }
  EXPECT_FALSE(ValidateCorsOptions({.allowed_origins = {}, .max_age_seconds = -1}).ok());
  EXPECT_FALSE(ValidateCorsOptions({.allowed_origins = {}, .max_age_seconds = 86401}).ok());
}

TEST(Cors, ClosedWithoutOrigins) {
  const Cors cors(CorsOptions{});
  EXPECT_FALSE(cors.enabled());
  for (const char* origin : {kShop, "*", "null"}) {
    const HttpRequest r = WithOrigin("OPTIONS", origin);
    EXPECT_FALSE(cors.AllowedOrigin(r).has_value()) << origin;
    EXPECT_FALSE(cors.Preflight(r, "GET").has_value()) << origin;
    HttpResponse response;
    cors.Decorate(r, &response);
    EXPECT_TRUE(response.headers.empty()) << origin;
  }
}

// A listed origin is echoed; other origins, "*" and "null" sent as an Origin, are not.
TEST(Cors, AllowsOnlyListedOriginsAndStarOnlyWhenListed) {
  const Cors cors({.allowed_origins = {kShop, "http://localhost:3000"}});
  EXPECT_EQ(cors.AllowedOrigin(WithOrigin("GET", kShop)), kShop);
  EXPECT_EQ(cors.AllowedOrigin(WithOrigin("GET", "https://SHOP.example")), "https://SHOP.example");
  EXPECT_EQ(cors.AllowedOrigin(WithOrigin("GET", "http://localhost:3000")),
            "http://localhost:3000");
  for (const char* other :
       {"https://evil.example", "http://shop.example", "https://shop.example.evil.example",
        "https://shop.example:444", "http://localhost", "*", "null", ""}) {
    EXPECT_FALSE(cors.AllowedOrigin(WithOrigin("GET", other)).has_value()) << other;
  }
  const Cors any({.allowed_origins = {"*"}});
  EXPECT_EQ(any.AllowedOrigin(WithOrigin("GET", "https://evil.example")), "https://evil.example");
  EXPECT_FALSE(any.AllowedOrigin(WithOrigin("GET", "null")).has_value());
  EXPECT_FALSE(any.AllowedOrigin(WithOrigin("GET", "")).has_value());
}

// A preflight needs OPTIONS and Access-Control-Request-Method; an actual request's answer gets
// the origin and Vary (merged with a Vary already there).
TEST(Cors, PreflightAndDecorate) {
  const Cors cors({.allowed_origins = {kShop}, .max_age_seconds = 120});
  EXPECT_FALSE(cors.Preflight(WithOrigin("GET", kShop), "GET").has_value());
  HttpRequest no_method = WithOrigin("OPTIONS", kShop);
  no_method.headers.pop_back();
  EXPECT_FALSE(cors.Preflight(no_method, "GET").has_value());
  const std::optional<HttpResponse> approved = cors.Preflight(WithOrigin("OPTIONS", kShop), "GET");
  ASSERT_TRUE(approved.has_value());
  EXPECT_EQ(approved->status, 204);
  EXPECT_TRUE(approved->body.empty());
  HttpResponse response;
  response.headers.emplace_back("Vary", "Accept-Encoding");
  cors.Decorate(WithOrigin("GET", kShop), &response);
  ASSERT_EQ(response.headers.size(), 3u);
  EXPECT_EQ(response.headers[0].second, "Accept-Encoding, Origin");
  EXPECT_EQ(response.headers[1],
            std::make_pair(std::string("Access-Control-Allow-Origin"), std::string(kShop)));
  EXPECT_EQ(response.headers[2].first, "Access-Control-Expose-Headers");
  HttpResponse refused;
  cors.Decorate(WithOrigin("GET", "https://evil.example"), &refused);
  ASSERT_EQ(refused.headers.size(), 1u);  // Vary only: caches keep answers per origin
  EXPECT_EQ(refused.headers[0].first, "Vary");
}

// A server on 127.0.0.1 with the API key "secret" (every route, reads too, needs it).
class CorsServerTest : public ::testing::Test {
 protected:
  void Start(std::vector<std::string> origins) {
    const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
    ASSERT_OK(SaveModel(model, dir_.File("models")).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({dir_.File("models"), ""}));
    ApiOptions options;
    options.api_key = "secret";
    options.auth_reads = true;
    options.cors.allowed_origins = std::move(origins);
    options.cors.max_age_seconds = 300;
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(), .metrics = &metrics_}, options);
    HttpServerOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 1;
    ASSERT_OK_AND_ASSIGN(server_, HttpServer::Create(http, [this](const HttpRequest& r) {
                           return api_->Handle(r);
                         }));
    ASSERT_OK(server_->Start());
    thread_ = std::thread([this] { server_->Run(); });
    for (int attempt = 0; attempt < 200; ++attempt) {  // bounded: at most ~2 s
      try {
        if (Client(server_->port()).Get("/readyz").status == 200) return;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "server never became ready";
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      if (thread_.joinable()) thread_.join();
    }
  }

  // What a browser sends before a cross-origin GET with a key: no key of its own.
  Reply Preflight(const std::string& target, const std::string& origin,
                  const std::string& method = "GET") {
    return Client(server_->port())
        .SendRaw("OPTIONS " + target + " HTTP/1.1\r\nHost: api.example\r\nOrigin: " + origin +
                 "\r\nAccess-Control-Request-Method: " + method +
                 "\r\nAccess-Control-Request-Headers: authorization,content-type\r\n\r\n");
  }

  // A GET from a page on `origin` ("" for none), with the key.
  Reply Get(const std::string& target, const std::string& origin,
            const std::string& key = "secret") {
    std::string raw = "GET " + target + " HTTP/1.1\r\nHost: api.example\r\n";
    if (!origin.empty()) raw += "Origin: " + origin + "\r\n";
    if (!key.empty()) raw += "Authorization: Bearer " + key + "\r\n";
    return Client(server_->port()).SendRaw(raw + "\r\n");
  }

  static bool AnyCorsHeader(const Reply& r) {
    for (const auto& [name, value] : r.headers) {
      if (name.rfind("Access-Control-", 0) == 0 || name.rfind("access-control-", 0) == 0) {
        return true;
      }
    }
    return false;
  }

  test::TempDir dir_;
  Metrics metrics_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(CorsServerTest, PreflightFromAnAllowedOriginIs204WithTheRoutesMethodsAndNeedsNoKey) {
  Start({kShop});
  const Reply r = Preflight("/v1/items/i1", kShop, "PUT");
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.HasHeader("Content-Type"));  // no body, no type (found by the fuzz harness)
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), kShop);
  EXPECT_EQ(r.Header("Access-Control-Allow-Methods"), "GET, PUT, DELETE");
  EXPECT_EQ(r.Header("Access-Control-Allow-Headers"), "Authorization, Content-Type");
  EXPECT_EQ(r.Header("Access-Control-Max-Age"), "300");
  EXPECT_EQ(r.Header("Vary"), "Origin");
  EXPECT_FALSE(r.HasHeader("Access-Control-Allow-Credentials"));
  EXPECT_FALSE(r.HasHeader("WWW-Authenticate"));
  // Every API route, the admin ones included: the key is checked on the actual request.
  for (const char* target :
       {"/v1/feedback", "/v1/users/u1/recommendations?n=3", "/v1/admin/retrain", "/v1/users/u1"}) {
    const Reply p = Preflight(target, kShop, "POST");
    EXPECT_EQ(p.status, 204) << target << " " << p.body;
    EXPECT_EQ(p.Header("Access-Control-Allow-Origin"), kShop) << target;
  }
  EXPECT_EQ(Preflight("/v1/feedback", kShop).Header("Access-Control-Allow-Methods"), "POST");
}

TEST_F(CorsServerTest, PreflightFromADisallowedOriginGetsNoApproval) {
  Start({kShop});
  for (const char* origin : {"https://evil.example", "null", "http://shop.example"}) {
    const Reply r = Preflight("/v1/popular", origin);
    EXPECT_EQ(r.status, 405) << origin;  // as for any method the route does not answer
    EXPECT_EQ(r.allow, "GET");
    EXPECT_FALSE(AnyCorsHeader(r)) << origin;
  }
}

TEST_F(CorsServerTest, AnswersToAnAllowedOriginCarryItAndVaryOrigin) {
  Start({kShop});
  const Reply ok = Get("/v1/users/u3/recommendations?n=3", kShop);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Header("Access-Control-Allow-Origin"), kShop);
  EXPECT_EQ(ok.Header("Vary"), "Origin");
  EXPECT_EQ(ok.Header("X-Content-Type-Options"), "nosniff");
  // Errors too, so that the page can read why (here: no key).
  const Reply refused = Get("/v1/popular", kShop, /*key=*/"");
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(refused.Header("Access-Control-Allow-Origin"), kShop);
  // ... and the headers a client acts on (Retry-After of a 429, WWW-Authenticate of a 401).
  EXPECT_EQ(refused.Header("Access-Control-Expose-Headers"), "Retry-After, WWW-Authenticate");
  // Another origin gets the answer a plain client gets (its browser hides it), and Vary.
  const Reply other = Get("/v1/popular", "https://evil.example");
  EXPECT_EQ(other.status, 200);
  EXPECT_FALSE(AnyCorsHeader(other));
  EXPECT_EQ(other.Header("Vary"), "Origin");
}

TEST_F(CorsServerTest, StarAllowsEveryOriginOnlyWhenListedAndIsNeverSent) {
  Start({"*"});
  const Reply r = Preflight("/v1/popular", "https://anyone.example");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.Header("Access-Control-Allow-Origin"), "https://anyone.example");
  EXPECT_EQ(Get("/v1/popular", "https://anyone.example").Header("Access-Control-Allow-Origin"),
            "https://anyone.example");
  EXPECT_FALSE(AnyCorsHeader(Preflight("/v1/popular", "null")));
}

TEST_F(CorsServerTest, WithoutOriginsNoCorsHeaderIsEverSent) {
  Start({});
  const Reply preflight = Preflight("/v1/popular", kShop);
  EXPECT_EQ(preflight.status, 405);
  EXPECT_FALSE(AnyCorsHeader(preflight));
  EXPECT_FALSE(preflight.HasHeader("Vary"));
  for (const char* target : {"/v1/popular", "/", "/healthz", "/nope"}) {
    const Reply r = Get(target, kShop);
    EXPECT_FALSE(AnyCorsHeader(r)) << target;
    EXPECT_FALSE(r.HasHeader("Vary")) << target;
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff") << target;
  }
}

// The storefront page: only its own script and style files run, it cannot be framed, it sends
// no Referer, and no answer is content-sniffed.
TEST_F(CorsServerTest, ThePageCarriesItsSecurityHeaders) {
  Start({});
  for (const char* target : {"/", "/storefront.js", "/storefront.css"}) {
    const Reply r = Get(target, "", /*key=*/"");
    ASSERT_EQ(r.status, 200) << target;
    const std::string csp = r.Header("Content-Security-Policy");
    EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
    EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
    EXPECT_NE(csp.find("style-src 'self';"), std::string::npos) << csp;
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
    EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
    EXPECT_EQ(r.Header("X-Frame-Options"), "DENY");
    EXPECT_EQ(r.Header("Referrer-Policy"), "no-referrer");
    EXPECT_EQ(r.Header("X-Content-Type-Options"), "nosniff");
  }
  const Reply page = Get("/", "", "");
  // The page keeps no inline script or style the policy would block.
  EXPECT_EQ(page.body.find("<script>"), std::string::npos);
  EXPECT_EQ(page.body.find("<style"), std::string::npos);
  EXPECT_EQ(page.body.find("style="), std::string::npos);
  EXPECT_FALSE(std::regex_search(page.body, std::regex(R"(\son[a-z]+\s*=)")));  // onclick=...
  const Reply json = Get("/v1/popular", "");
  EXPECT_EQ(json.content_type, "application/json");
  EXPECT_EQ(json.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_FALSE(json.HasHeader("Content-Security-Policy"));
  // The answers the server makes before the Api sees a request too.
  const Reply malformed = Client(server_->port()).SendRaw("NOT HTTP\r\n\r\n");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.Header("X-Content-Type-Options"), "nosniff");
}

}  // namespace
}  // namespace recloop
