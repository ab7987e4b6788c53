// Integration tests of the HTTP server: a real server on 127.0.0.1 (ephemeral port) spoken to
// over sockets. Readiness is polled on /readyz, never waited for with a fixed sleep.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/read.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/http_server.h"
#include "serving/live_model.h"
#include "tests/engine/random_model.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using test::Client;
using test::Reply;

// A server over a random implicit model (40 users, 300 items, K = 8) saved into a temporary
// models directory, run on its own thread.
class ServerTest : public ::testing::Test {
 protected:
  void Start(HttpServerOptions http = {}, ApiOptions api_options = {}) {
    const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
    ASSERT_OK(SaveModel(model, dir_.File("models")).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({dir_.File("models"), ""}));
    api_ = std::make_unique<Api>(
        ApiServices{.live = live_.get(),
                    .metrics = &metrics_,
                    .connections = [this] { return server_->open_connections(); }},
        api_options);
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 2;
    ASSERT_OK_AND_ASSIGN(server_,
                         HttpServer::Create(
                             http, [this](const HttpRequest& r) { return Handle(r); },
                             [this](const HttpRequest&, const HttpResponse& res, double micros) {
                               metrics_.Observe(res.route, res.status, micros);
                             }));
    ASSERT_OK(server_->Start());
    thread_ = std::thread([this] { server_->Run(); });
    WaitReady();
    // The probes' connections are gone before a test counts connections.
    for (int i = 0; i < 200 && server_->open_connections() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // The API, plus /test/slow that takes 300 ms (for draining tests).
  virtual HttpResponse Handle(const HttpRequest& r) {
    if (r.target == "/test/slow") {
      slow_entered_ = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      HttpResponse res;
      res.body = "{\"slow\":true}";
      return res;
    }
    if (r.target == "/test/wait") {  // waits (bounded: 10 s) until released_
      wait_entered_ = true;
      for (int i = 0; i < 2000 && !released_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      HttpResponse res;
      res.body = released_ ? "{\"released\":true}" : "{\"released\":false}";
      return res;
    }
    return api_->Handle(r);
  }

  void WaitReady() {
    for (int attempt = 0; attempt < 200; ++attempt) {  // bounded: at most ~2 s
      try {
        Client c(server_->port());
        if (c.Get("/readyz").status == 200) return;
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

  uint16_t port() const { return server_->port(); }

  test::TempDir dir_;
  Metrics metrics_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::atomic<bool> slow_entered_{false};
  std::atomic<bool> wait_entered_{false};
  std::atomic<bool> released_{false};
};

TEST_F(ServerTest, EveryReadRouteAnswersWithTheContractShape) {
  Start();
  Client c(port());
  EXPECT_EQ(c.Get("/healthz").Json()["status"], "ok");
  EXPECT_EQ(c.Get("/readyz").Json()["model_version"], "v000001");

  Reply r = c.Get("/v1/users/u3/recommendations?n=5");
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["user"], "u3");
  EXPECT_EQ(j["model_version"], "v000001");
  ASSERT_EQ(j["items"].size(), 5u);
  for (const auto& item : j["items"]) {
    EXPECT_EQ(item["source"], "personalized");
    EXPECT_TRUE(item["score"].is_number());
  }
  // Already-seen items never come back.
  const auto seen = live_->Get()->model->seen.RowIndices(3);
  for (const auto& item : j["items"]) {
    const int32_t i = *live_->Get()->model->items.Find(item["item"].get<std::string>());
    EXPECT_EQ(std::find(seen.begin(), seen.end(), i), seen.end()) << item;
  }

  j = c.Get("/v1/users/someone-new/recommendations?n=3").Json();
  ASSERT_EQ(j["items"].size(), 3u);
  EXPECT_EQ(j["items"][0]["source"], "popular");

  j = c.Get("/v1/items/i7/similar?n=4").Json();
  EXPECT_EQ(j["item"], "i7");
  ASSERT_EQ(j["items"].size(), 4u);
  EXPECT_EQ(j["items"][0]["source"], "similar");
  for (const auto& item : j["items"]) EXPECT_NE(item["item"], "i7");

  j = c.Get("/v1/popular?n=2").Json();
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_GE(j["items"][0]["score"].get<double>(), j["items"][1]["score"].get<double>());

  // Paging: offset 2 starts where n = 2 ended.
  const json first4 = c.Get("/v1/popular?n=4").Json();
  const json page2 = c.Get("/v1/popular?n=2&offset=2").Json();
  EXPECT_EQ(page2["items"][0]["item"], first4["items"][2]["item"]);

  // exclude= drops the named items.
  const std::string top = first4["items"][0]["item"];
  j = c.Get("/v1/popular?n=1&exclude=" + top).Json();
  EXPECT_NE(j["items"][0]["item"], top);

  j = c.Get("/v1/model").Json();
  EXPECT_EQ(j["model_version"], "v000001");
  EXPECT_EQ(j["params"]["factors"], 8);

  r = c.Get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("recloop_http_requests_total{route=\"/v1/popular\",status=\"200\"}"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("recloop_http_request_duration_seconds_bucket{route=\"/v1/popular\""),
            std::string::npos);
  EXPECT_NE(r.body.find("recloop_model_info{version=\"v000001\"} 1"), std::string::npos);
  EXPECT_NE(r.body.find("recloop_model_items 300"), std::string::npos);
  EXPECT_NE(r.body.find("recloop_http_connections 1"), std::string::npos);
}

TEST_F(ServerTest, CatalogueWritesDriveTheFiltersAndSurviveARestart) {
  Start();
  Client c(port());
  Reply r = c.Send(http::verb::put, "/v1/items/i5", R"({"categories":["shoes","red"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["in_model"], true);
  ASSERT_EQ(c.Send(http::verb::put, "/v1/items/i9", R"({"categories":["shoes"]})").status, 200);

  // Only the two shoes, whatever their popularity.
  json j = c.Get("/v1/popular?n=10&category=shoes").Json();
  ASSERT_EQ(j["items"].size(), 2u) << j;
  j = c.Get("/v1/popular?n=10&category=red&category=blue").Json();
  ASSERT_EQ(j["items"].size(), 1u);
  EXPECT_EQ(j["items"][0]["item"], "i5");
  EXPECT_EQ(c.Get("/v1/popular?n=10&category=nothing").Json()["items"].size(), 0u);

  // DELETE makes an item unavailable: never recommended again, by any route.
  const std::string top = c.Get("/v1/popular?n=1").Json()["items"][0]["item"];
  r = c.Send(http::verb::delete_, "/v1/items/" + top);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["available"], false);
  for (const std::string target :
       {"/v1/popular?n=50", "/v1/users/u1/recommendations?n=50",
        "/v1/users/new/recommendations?n=50", "/v1/items/i1/similar?n=50"}) {
    j = c.Get(target).Json();
    for (const auto& item : j["items"]) EXPECT_NE(item["item"], top) << target;
  }
  EXPECT_EQ(c.Get("/v1/items/" + top).Json()["available"], false);

  // A new server over the same directory keeps the catalogue.
  server_->Stop();
  thread_.join();
  ASSERT_OK_AND_ASSIGN(auto reopened, LiveModel::Open({dir_.File("models"), ""}));
  ASSERT_TRUE(reopened->GetItem(top).has_value());
  EXPECT_FALSE(reopened->GetItem(top)->available);
  EXPECT_EQ(reopened->GetItem("i5")->categories, (std::vector<std::string>{"red", "shoes"}));
}

// The storefront page's needs: titles in the catalogue, ?details=true on the list routes, a
// page of customer IDs, and the page itself.
TEST_F(ServerTest, TitlesDetailsCustomerPagesAndTheStorefrontPage) {
  Start();
  Client c(port());
  Reply r = c.Send(http::verb::put, "/v1/items/i5",
                   R"({"title":"Caf\u00e9 \"Noir\"","categories":["drinks"]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["title"], "Caf\u00e9 \"Noir\"");
  EXPECT_EQ(c.Get("/v1/items/i5").Json()["title"], "Caf\u00e9 \"Noir\"");

  // Without details the list keeps its lean shape; with them every item has both keys.
  json j = c.Get("/v1/popular?n=300").Json();
  EXPECT_FALSE(j["items"][0].contains("title"));
  j = c.Get("/v1/popular?n=300&details=true").Json();
  int titled = 0;
  for (const auto& item : j["items"]) {
    ASSERT_TRUE(item.contains("title") && item.contains("categories")) << item;
    if (item["item"] == "i5") {
      ++titled;
      EXPECT_EQ(item["title"], "Caf\u00e9 \"Noir\"");
      EXPECT_EQ(item["categories"], json::array({"drinks"}));
    } else {
      EXPECT_EQ(item["title"], "");
    }
  }
  EXPECT_EQ(titled, 1);
  j = c.Get("/v1/items/i7/similar?n=300&details=true&category=drinks").Json();
  ASSERT_EQ(j["items"].size(), 1u) << j;
  EXPECT_EQ(j["items"][0]["title"], "Caf\u00e9 \"Noir\"");
  EXPECT_EQ(c.Get("/v1/popular?details=yes").status, 400);
  EXPECT_EQ(c.Get("/v1/popular?details=true&details=false").status, 400);
  EXPECT_EQ(c.Send(http::verb::put, "/v1/items/i6", R"({"title":7})").status, 400);
  EXPECT_EQ(
      c.Send(http::verb::put, "/v1/items/i6", R"({"title":")" + std::string(1025, 'x') + R"("})")
          .status,
      400);

  // Customer IDs, paged in model order.
  j = c.Get("/v1/users?n=3&offset=38").Json();
  EXPECT_EQ(j["total"], 40);
  EXPECT_EQ(j["users"], json::array({"u38", "u39"}));
  EXPECT_EQ(c.Get("/v1/users").Json()["users"].size(), 10u);  // the default n
  EXPECT_EQ(c.Get("/v1/users?category=a").Json()["error"]["code"], "unknown_parameter");
  EXPECT_EQ(c.Get("/v1/users?n=0").status, 400);

  // The page and its two files, typed, with a content security policy; nothing else is static.
  r = c.Get("/");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<script src=\"/storefront.js\""), std::string::npos);
  r = c.Get("/storefront.js");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_NE(r.body.find("/v1/feedback"), std::string::npos);
  EXPECT_EQ(c.Get("/storefront.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(c.Get("/storefront.html").status, 404);
  EXPECT_EQ(c.Send(http::verb::post, "/", "{}").status, 405);
}

TEST_F(ServerTest, BadRequestsGetJsonErrorsWithTheRightStatus) {
  HttpServerOptions http;
  http.max_body_bytes = 1000;
  http.max_header_bytes = 1024;
  Start(http);
  Client c(port());
  auto expect_error = [&](Reply r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    const json j = r.Json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["error"]["code"], code) << r.body;
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  };
  expect_error(c.Get("/v1/popular?n=0"), 400, "bad_parameter");
  expect_error(c.Get("/v1/popular?n=-3"), 400, "bad_parameter");
  expect_error(c.Get("/v1/popular?n=ten"), 400, "bad_parameter");
  expect_error(c.Get("/v1/popular?n=1001"), 400, "bad_parameter");  // above max_n
  expect_error(c.Get("/v1/popular?n=2&n=3"), 400, "bad_parameter");
  expect_error(c.Get("/v1/popular?colour=red"), 400, "unknown_parameter");
  expect_error(c.Get("/v1/users/u1/recommendations?offset=x"), 400, "bad_parameter");
  expect_error(c.Get("/v1/nothing"), 404, "not_found");
  expect_error(c.Get("/v2/popular"), 404, "not_found");
  // Without --events the feedback routes exist but are off.
  expect_error(c.Send(http::verb::post, "/v1/feedback", "[]"), 404, "feedback_disabled");
  expect_error(c.Get("/v1/users/u1/feedback"), 404, "feedback_disabled");
  expect_error(c.Get("/v1/items/no-such-item/similar"), 404, "unknown_item");
  expect_error(c.Get("/v1/items/no-such-item"), 404, "unknown_item");
  Reply r = c.Send(http::verb::post, "/v1/popular", "{}");
  expect_error(r, 405, "method_not_allowed");
  EXPECT_EQ(r.allow, "GET");
  expect_error(c.Send(http::verb::put, "/v1/items/i1", "categories=a", "text/plain"), 415,
               "unsupported_media_type");
  expect_error(c.Send(http::verb::put, "/v1/items/i1", "{not json"), 400, "bad_body");
  expect_error(c.Send(http::verb::put, "/v1/items/i1", R"({"categories":"a"})"), 400, "bad_body");
  expect_error(c.Send(http::verb::put, "/v1/items/i1", R"({"available":"yes"})"), 400, "bad_body");
  // The connection survived every 4xx above.
  EXPECT_EQ(c.Get("/healthz").status, 200);

  // 411: a PUT with neither Content-Length nor chunked encoding.
  Client raw(port());
  expect_error(raw.SendRaw("PUT /v1/items/i1 HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\n\r\n"),
               411, "length_required");
  // 413: a body over the limit (announced by Content-Length).
  Client big(port());
  expect_error(big.Send(http::verb::put, "/v1/items/i1", std::string(5000, ' ')), 413,
               "body_too_large");
  // 431: a header block over the limit.
  Client huge(port());
  expect_error(huge.SendRaw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4000, 'a') +
                            "\r\n\r\n"),
               431, "header_too_large");
  // Malformed request lines: 400, and the connection is closed.
  for (const std::string bad :
       {"GARBAGE\r\n\r\n", "GET /healthz HTTP/9.9\r\n\r\n", "GET  HTTP/1.1\r\nHost: x\r\n\r\n",
        "G\x01T /healthz HTTP/1.1\r\n\r\n"}) {
    Client m(port());
    expect_error(m.SendRaw(bad), 400, "bad_request");
    EXPECT_TRUE(m.ClosedWithin(std::chrono::seconds(2)));
  }
  // Relative targets and percent-garbage are 4xx too, never a crash.
  Client odd(port());
  EXPECT_EQ(odd.SendRaw("GET healthz HTTP/1.1\r\nHost: x\r\n\r\n").status, 400);
  EXPECT_EQ(odd.Get("/v1/users/%ZZ%00/recommendations").status, 200);  // an odd but valid ID
  // Still serving.
  EXPECT_EQ(Client(port()).Get("/healthz").status, 200);
}

TEST_F(ServerTest, ApiKeyGuardsWritesAndIsComparedExactly) {
  ApiOptions api;
  api.api_key = "s3cret-key";
  Start({}, api);
  Client c(port());
  const std::string body = R"({"categories":["a"]})";
  Reply r = c.Send(http::verb::put, "/v1/items/i1", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Json()["error"]["code"], "unauthorized");
  EXPECT_EQ(
      c.Send(http::verb::put, "/v1/items/i1", body, "application/json", "Bearer wrong").status,
      401);
  EXPECT_EQ(
      c.Send(http::verb::put, "/v1/items/i1", body, "application/json", "Bearer s3cret-ke").status,
      401);
  EXPECT_EQ(c.Send(http::verb::delete_, "/v1/items/i1", "", "application/json", "Basic s3cret-key")
                .status,
            401);
  EXPECT_EQ(
      c.Send(http::verb::put, "/v1/items/i1", body, "application/json", "Bearer s3cret-key").status,
      200);
  // Reads stay open by default.
  EXPECT_EQ(c.Get("/v1/popular").status, 200);
}

TEST_F(ServerTest, KeepAliveReusesOneConnection) {
  Start();
  Client c(port());
  for (int i = 0; i < 20; ++i) {
    const Reply r = c.Get("/v1/users/u" + std::to_string(i) + "/recommendations?n=3");
    ASSERT_EQ(r.status, 200);
    EXPECT_TRUE(r.keep_alive);
  }
  EXPECT_EQ(server_->open_connections(), 1);
}

TEST_F(ServerTest, ConcurrentClientsAllGetAnswers) {
  Start();
  constexpr int kClients = 8, kRequests = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Client c(port());
      for (int i = 0; i < kRequests; ++i) {
        const Reply r = c.Get("/v1/users/u" + std::to_string((t * kRequests + i) % 40) +
                              "/recommendations?n=5");
        if (r.status == 200 && r.Json()["items"].size() == 5) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
}

// The live model is swapped (new versions, catalogue writes) while clients are reading: no
// request blocks on the swap or fails, and every answer comes from one whole version.
TEST_F(ServerTest, ModelSwapsAndCatalogueWritesDuringTrafficNeverFailARequest) {
  Start();
  const FactorModel next = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 12);
  ASSERT_OK(SaveModel(next, dir_.File("models")).status());
  constexpr int kReaders = 4, kRequests = 40, kSwaps = 10;
  std::atomic<int> ok{0};
  std::atomic<bool> bad_version{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kReaders; ++t) {
    threads.emplace_back([&, t] {
      Client c(port());
      for (int i = 0; i < kRequests; ++i) {
        const std::string target =
            i % 2 == 0 ? "/v1/users/u" + std::to_string((t + i) % 40) + "/recommendations?n=5"
                       : "/v1/items/i" + std::to_string((t + i) % 300) + "/similar?n=5";
        const Reply r = c.Get(target);
        const json j = r.Json();
        if (r.status == 200 && j["items"].size() == 5) ++ok;
        const std::string version = j.value("model_version", "");
        if (version != "v000001" && version != "v000002") bad_version = true;
      }
    });
  }
  threads.emplace_back([&] {
    Client c(port());
    for (int i = 0; i < kSwaps; ++i) {
      // Alternate versions: reload v2 (current), then pin v1 again, and write the catalogue.
      EXPECT_OK(live_->Reload(i % 2 == 0 ? "" : dir_.File("models/v000001")));
      const Reply r = c.Send(http::verb::put, "/v1/items/i" + std::to_string(i),
                             R"({"categories":["swap"],"available":true})");
      EXPECT_EQ(r.status, 200) << r.body;
    }
    EXPECT_OK(live_->Reload());
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kReaders * kRequests);
  EXPECT_FALSE(bad_version.load());
  EXPECT_EQ(Client(port()).Get("/v1/model").Json()["model_version"], "v000002");
}

TEST_F(ServerTest, SlowLorisClientIsCutOffWhileOthersAreServed) {
  HttpServerOptions http;
  http.read_timeout = std::chrono::milliseconds(300);
  Start(http);
  Client slow(port());
  // One byte every 50 ms: the request never completes within the read timeout.
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  bool closed = false;
  for (size_t i = 0; i < partial.size() + 40 && !closed; ++i) {  // bounded: ~4 s at most
    beast::error_code ec;
    const char byte = i < partial.size() ? partial[i] : 'a';
    net::write(slow.stream().socket(), net::buffer(&byte, 1), ec);
    if (ec) closed = true;
    // Meanwhile another client is served at once.
    if (i == 3) {
      EXPECT_EQ(Client(port()).Get("/healthz").status, 200);
    }
    if (!closed && slow.ClosedWithin(std::chrono::milliseconds(50))) closed = true;
  }
  EXPECT_TRUE(closed) << "the slow client was never cut off";
}

TEST_F(ServerTest, ConnectionLimitAnswers503) {
  HttpServerOptions http;
  http.max_connections = 2;
  Start(http);
  Client a(port()), b(port());
  ASSERT_EQ(a.Get("/healthz").status, 200);
  ASSERT_EQ(b.Get("/healthz").status, 200);
  Client c(port());
  const Reply r = c.Get("/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Json()["error"]["code"], "too_many_connections");
}

TEST_F(ServerTest, RateLimitPerConnectionAnswers429) {
  HttpServerOptions http;
  http.max_requests_per_second_per_connection = 5;
  Start(http);
  Client c(port());
  int limited = 0;
  for (int i = 0; i < 20; ++i) {
    const Reply r = c.Get("/healthz");
    if (r.status != 429) continue;
    ++limited;
    EXPECT_EQ(r.retry_after, "1");  // whole seconds until the next token (0.2 s at 5/s)
  }
  EXPECT_GE(limited, 10);  // a burst of 5 passes, then about 5 per second
}

// A request that may wait (here a POST held until released, as a write waits for its commit)
// runs off the I/O thread: with one I/O thread, reads on other connections are answered
// meanwhile, and so is a second waiting request, which is in flight beside the first.
TEST_F(ServerTest, AWaitingWriteHoldsUpNoOtherConnectionOfItsIoThread) {
  HttpServerOptions http;
  http.threads = 1;
  Start(http);
  Reply first, second;
  std::thread writer([&] { first = Client(port()).Send(http::verb::post, "/test/wait", "{}"); });
  for (int i = 0; i < 400 && !wait_entered_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(wait_entered_);
  std::thread writer2([&] { second = Client(port()).Send(http::verb::post, "/test/wait", "{}"); });
  Client reader(port());
  for (int i = 0; i < 5; ++i) {
    const Reply r = reader.Get("/v1/users/u" + std::to_string(i) + "/recommendations?n=3");
    EXPECT_EQ(r.status, 200) << r.body;
  }
  EXPECT_FALSE(released_);  // every read above was answered while the writes waited
  released_ = true;
  writer.join();
  writer2.join();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "{\"released\":true}");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, "{\"released\":true}");
}

// A waiting write in flight when the server stops is answered in full before Run() returns.
TEST_F(ServerTest, StopAnswersTheWaitingWriteBeforeRunReturns) {
  Start();
  Reply reply;
  std::thread writer([&] { reply = Client(port()).Send(http::verb::post, "/test/slow", "{}"); });
  for (int i = 0; i < 400 && !slow_entered_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(slow_entered_);
  server_->Stop();
  thread_.join();  // Run() returned after the answer was written
  writer.join();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "{\"slow\":true}");
  EXPECT_FALSE(reply.keep_alive);
}

TEST_F(ServerTest, SigtermFinishesTheRequestInFlightThenStops) {
  Start();
  server_->StopOnSignals();  // after Run started: signal_set registration is thread-safe
  Client idle(port());
  ASSERT_EQ(idle.Get("/healthz").status, 200);
  Reply slow_reply;
  std::thread slow([&] { slow_reply = Client(port()).Get("/test/slow"); });
  for (int i = 0; i < 200 && !slow_entered_; ++i) {  // bounded wait for the handler to start
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(slow_entered_);
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  slow.join();
  EXPECT_EQ(slow_reply.status, 200);  // answered in full, not dropped
  EXPECT_EQ(slow_reply.body, "{\"slow\":true}");
  EXPECT_FALSE(slow_reply.keep_alive);                      // Connection: close while draining
  EXPECT_TRUE(idle.ClosedWithin(std::chrono::seconds(5)));  // idle connections are closed
  thread_.join();  // Run() returned: the server drained and stopped
  // Nothing listens any more.
  EXPECT_THROW(Client{port()}, boost::system::system_error);
}

}  // namespace
}  // namespace recloop
