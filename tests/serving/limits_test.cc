// Issue 23, "limits that hold against real clients", over real sockets on 127.0.0.1: the per-key
// and per-address rate limits (429 with Retry-After; another key, another address and the health
// checks still served; new connections do not reset an address's bucket; X-Forwarded-For from a
// trusted proxy only), every request cap's 400, and a hostile JSON body refused before it is
// parsed while the server keeps serving. Limits are low (a burst of 3 at 1 a second), so that a
// burst of 4 requests reliably exceeds them: no timing is asserted.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/event_store.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/api_keys.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "tests/engine/random_model.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

namespace http = boost::beast::http;
using test::Client;
using test::Reply;

constexpr char kShop[] = "Bearer shop-secret";  // read, feedback, catalog
constexpr char kOps[] = "Bearer ops-secret";    // read

class LimitsTest : public ::testing::Test {
 protected:
  void Start(ApiOptions options) {
    const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
    ASSERT_OK(SaveModel(model, dir_.File("models")).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({dir_.File("models"), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    ASSERT_OK(Api::Validate(options));
    api_ = std::make_unique<Api>(
        ApiServices{
            .live = live_.get(), .metrics = &metrics_, .events = events_.get(), .keys = &keys_},
        options);
    HttpServerOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 2;
    ASSERT_OK_AND_ASSIGN(server_, HttpServer::Create(http, [this](const HttpRequest& r) {
                           return api_->Handle(r);
                         }));
    ASSERT_OK(server_->Start());
    thread_ = std::thread([this] { server_->Run(); });
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      if (thread_.joinable()) thread_.join();
    }
  }

  Reply Get(Client& c, const std::string& target, const std::string& auth = "") {
    return c.Send(http::verb::get, target, "", "application/json", auth);
  }

  std::string Metric(const std::string& reason) const {
    const std::string text = metrics_.Render({});
    const std::string name = "recloop_http_rate_limited_total{reason=\"" + reason + "\"} ";
    const size_t at = text.find(name);
    if (at == std::string::npos) return "";
    return text.substr(at + name.size(), text.find('\n', at) - at - name.size());
  }

  uint16_t port() const { return server_->port(); }

  test::TempDir dir_;
  Metrics metrics_;
  ApiKeys keys_{true,
                {{"shop", kScopeRead | kScopeFeedback | kScopeCatalog, Sha256("shop-secret")},
                 {"ops", kScopeRead, Sha256("ops-secret")}}};
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

std::string ErrorCode(const Reply& r) {
  const nlohmann::json j = r.Json();
  if (j.is_discarded() || !j.contains("error")) return "";
  return j["error"]["code"];
}

TEST_F(LimitsTest, PerKeyLimitAnswers429WithRetryAfterWhileAnotherKeyIsServed) {
  ApiOptions options;
  options.auth_reads = true;
  options.key_rate_limit = {.rate = 1, .burst = 3};
  Start(options);
  Client c(port());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Get(c, "/v1/popular", kShop).status, 200) << i;
  const Reply limited = Get(c, "/v1/popular", kShop);
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(ErrorCode(limited), "rate_limited");
  EXPECT_EQ(limited.retry_after, "1");
  EXPECT_NE(limited.Json()["error"]["message"].get<std::string>().find("shop"), std::string::npos);
  // A new connection does not help the key; another key and the health checks are served.
  Client fresh(port());
  EXPECT_EQ(Get(fresh, "/v1/popular", kShop).status, 429);
  EXPECT_EQ(Get(c, "/v1/popular", kOps).status, 200);
  EXPECT_EQ(Get(c, "/healthz").status, 200);
  EXPECT_EQ(Get(c, "/readyz").status, 200);
  EXPECT_EQ(Metric("key"), "2");
  EXPECT_EQ(Metric("address"), "0");
}

TEST_F(LimitsTest, PerAddressLimitHoldsAcrossNewConnections) {
  ApiOptions options;
  options.address_rate_limit = {.rate = 1, .burst = 3};
  options.rate_limit_loopback = true;  // the test's clients are on 127.0.0.1
  Start(options);
  for (int i = 0; i < 3; ++i) {
    Client c(port());  // a new connection per request
    ASSERT_EQ(Get(c, "/v1/popular").status, 200) << i;
  }
  Client c(port());
  const Reply limited = Get(c, "/v1/popular");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(ErrorCode(limited), "rate_limited");
  EXPECT_EQ(limited.retry_after, "1");
  EXPECT_EQ(Get(c, "/no/such/route").status, 429);  // scanners count too
  // A valid key does not lift the address's limit (it applies before authentication).
  EXPECT_EQ(Get(c, "/v1/popular", kOps).status, 429);
  Client again(port());
  EXPECT_EQ(Get(again, "/healthz").status, 200);  // health checks are exempt
  EXPECT_EQ(Metric("address"), "3");
}

TEST_F(LimitsTest, LoopbackIsExemptByDefaultAndForwardedForCountsOnlyFromTrustedProxies) {
  ApiOptions options;
  options.address_rate_limit = {.rate = 1, .burst = 2};
  options.trusted_proxies = {"127.0.0.1"};  // as if a reverse proxy ran on this machine
  Start(options);
  auto from = [this](const std::string& forwarded) {
    Client c(port());
    return c.SendRaw("GET /v1/popular HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + forwarded +
                     "\r\n\r\n");
  };
  EXPECT_EQ(from("198.51.100.1, 203.0.113.7").status, 200);
  EXPECT_EQ(from("203.0.113.7").status, 200);
  const Reply limited = from("10.9.9.9, 203.0.113.7");  // only the last hop counts
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.retry_after, "1");
  EXPECT_EQ(from("203.0.113.8").status, 200);  // another client behind the proxy
  // The proxy's own requests (loopback, no header) are not limited by default.
  Client c(port());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Get(c, "/v1/popular").status, 200) << i;
}

TEST_F(LimitsTest, EachRequestCapAnswers400NamingIt) {
  ApiOptions options;
  options.feedback.max_events_per_request = 5;
  options.max_exclude = 3;
  options.max_categories = 2;
  options.json.max_elements = 50;
  Start(options);
  Client c(port());
  auto expect = [](const Reply& r, const std::string& code, const std::string& named) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(ErrorCode(r), code) << r.body;
    EXPECT_NE(r.body.find(named), std::string::npos) << r.body;
  };
  std::string events = "[";
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&events, i ? "," : "", R"({"user":"u1","item":"i1","type":"view"})");
  }
  events += "]";
  expect(c.Send(http::verb::post, "/v1/feedback", events, "application/json", kShop),
         "too_many_events", "at most 5 events");
  expect(Get(c, "/v1/users/u1/recommendations?exclude=a,b,c,d"), "too_many_exclusions",
         "at most 3");
  expect(Get(c, "/v1/items/i1/similar?exclude=a,b,c,d"), "too_many_exclusions", "at most 3");
  expect(Get(c, "/v1/popular?category=a&category=b&category=c"), "too_many_categories",
         "at most 2");
  const std::string long_id(513, 'a');
  expect(Get(c, "/v1/users/u1/recommendations?exclude=" + long_id), "id_too_long", "512");
  expect(Get(c, "/v1/popular?category=" + long_id), "id_too_long", "512");
  expect(Get(c, "/v1/users/" + long_id + "/recommendations"), "id_too_long", "512");
  std::string categories = R"({"categories":[)";
  for (int i = 0; i < 51; ++i) absl::StrAppend(&categories, i ? "," : "", "\"c", i, "\"");
  categories += "]}";
  expect(c.Send(http::verb::put, "/v1/items/i1", categories, "application/json", kShop),
         "json_too_many_elements", "50");
  expect(c.Send(http::verb::put, "/v1/items/i1", R"({"categories":[")" + long_id + R"("]})",
                "application/json", kShop),
         "id_too_long", "512");
  // IDs in bodies: an event with a user ID over the store's cap is rejected, the others stored.
  const std::string mixed =
      R"([{"user":")" + long_id +
      R"(","item":"i1","type":"view"},{"user":"u1","item":"i1","type":"view"}])";
  const Reply ack = c.Send(http::verb::post, "/v1/feedback", mixed, "application/json", kShop);
  ASSERT_EQ(ack.status, 200) << ack.body;
  EXPECT_EQ(ack.Json()["accepted"], 1);
  ASSERT_EQ(ack.Json()["rejected"].size(), 1u);
  EXPECT_EQ(ack.Json()["rejected"][0]["index"], 0);
  // At the caps: served.
  EXPECT_EQ(Get(c, "/v1/users/u1/recommendations?exclude=a,b,c&category=x&category=y").status, 200);
}

TEST_F(LimitsTest, HostileJsonBodiesGet400AndTheServerKeepsServing) {
  Start(ApiOptions{});
  Client c(port());
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {std::string(1'000'000, '['), "json_too_deep"},
      {"[" + std::string(17, '{') + "]", "json_too_deep"},
  };
  for (const auto& [body, code] : bodies) {
    for (const char* target : {"/v1/feedback", "/v1/items/i1"}) {
      const Reply r =
          c.Send(std::string(target) == "/v1/feedback" ? http::verb::post : http::verb::put, target,
                 body, "application/json", kShop);
      EXPECT_EQ(r.status, 400) << target;
      EXPECT_EQ(ErrorCode(r), code) << target << " " << r.body.substr(0, 200);
      EXPECT_TRUE(r.keep_alive);
    }
  }
  std::string zeros = "[0";
  while (zeros.size() < 1'000'000) zeros += ",0";
  zeros += "]";
  const Reply many = c.Send(http::verb::post, "/v1/feedback", zeros, "application/json", kShop);
  EXPECT_EQ(ErrorCode(many), "too_many_events") << many.body;
  const Reply put = c.Send(http::verb::put, "/v1/items/i1", zeros, "application/json", kShop);
  EXPECT_EQ(ErrorCode(put), "json_too_many_elements") << put.body;
  // The same connection and new ones are still served.
  EXPECT_EQ(Get(c, "/v1/popular").status, 200);
  Client other(port());
  EXPECT_EQ(Get(other, "/healthz").status, 200);
}

}  // namespace
}  // namespace recloop
