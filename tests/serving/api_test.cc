// The router without sockets: Api::Handle called with HttpRequest values over a random implicit
// model (40 users "u0".., 300 items "i0".., K = 8), an event store and a fake retrainer. Checks
// the route table's dispatch: every route reachable, 404, 405 with Allow per pattern, the scopes
// with and without a key, queries on routes that take none, ID lengths, route names,
// ?details=true answered from the snapshot's catalogue, and ?predicted_rating=true from the
// version's rating head.
#include "serving/api.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/event_store.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "serving/retrain_control.h"
#include "tests/engine/random_model.h"
#include "tests/serving/api_request.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using json = nlohmann::json;

constexpr char kKey[] = "secret-key";

// A retrainer that answers at once and counts what it was asked.
class FakeRetrain : public RetrainControl {
 public:
  void NoteEvents(std::span<const Event> events) override { noted += events.size(); }
  absl::StatusOr<std::optional<RetrainOutcome>> RetrainNow(bool wait) override {
    if (!wait) return std::nullopt;
    RetrainOutcome o;
    o.outcome = "skipped";
    return o;
  }
  absl::StatusOr<std::string> Rollback() override { return std::string("v000000"); }
  bool running() const override { return false; }
  std::optional<RetrainOutcome> Last() const override { return std::nullopt; }
  std::string RenderMetrics() const override { return "fake_retrain_metric 1\n"; }

  size_t noted = 0;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
    ASSERT_OK(SaveModel(model, dir_.File("models")).status());
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({dir_.File("models"), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    Configure(kKey, /*auth_reads=*/false);
  }

  // A new Api with this key (empty: none) and auth_reads.
  void Configure(const std::string& key, bool auth_reads) {
    ApiOptions options;
    options.api_key = key;
    options.auth_reads = auth_reads;
    api_.reset();
    api_ = std::make_unique<Api>(ApiServices{.live = live_.get(),
                                             .metrics = &metrics_,
                                             .connections = [] { return int64_t{3}; },
                                             .events = events_.get(),
                                             .retrain = &retrain_},
                                 options);
  }

  // Sends `method` `target`; with `key`, as a bearer token; a body is sent as JSON.
  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& key = "", const std::string& body = "") const {
    return api_->Handle(test::ApiRequest(method, target, key, body));
  }

  static std::string ErrorCode(const HttpResponse& r) { return test::ErrorCode(r); }

  static std::optional<std::string> Header(const HttpResponse& r, const std::string& name) {
    for (const auto& [key, value] : r.headers) {
      if (key == name) return value;
    }
    return std::nullopt;
  }

  test::TempDir dir_;
  Metrics metrics_;
  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  FakeRetrain retrain_;
  std::unique_ptr<Api> api_;
};

struct RouteCase {
  std::string method;
  std::string target;
  std::string body;
  int status;
  std::string route;  // the pattern the response names
};

const char kFeedbackBody[] = R"([{"user":"u1","item":"i2","type":"view"}])";
const char kItemBody[] = R"({"title":"Kettle","categories":["Kitchen"]})";

// One request per (method, pattern) of the route table, with the key.
std::vector<RouteCase> EveryRoute() {
  return {
      {"GET", "/", "", 200, "/"},
      {"GET", "/storefront.js", "", 200, "/{static}"},
      {"GET", "/storefront.css", "", 200, "/{static}"},
      {"GET", "/healthz", "", 200, "/healthz"},
      {"GET", "/readyz", "", 200, "/readyz"},
      {"GET", "/openapi.yaml", "", 200, "/openapi.yaml"},
      {"GET", "/metrics", "", 200, "/metrics"},
      {"GET", "/v1/users?n=2", "", 200, "/v1/users"},
      {"GET", "/v1/model", "", 200, "/v1/model"},
      {"GET", "/v1/admin/retrain", "", 200, "/v1/admin/retrain"},
      {"POST", "/v1/admin/retrain", "", 202, "/v1/admin/retrain"},
      {"POST", "/v1/admin/rollback", "", 200, "/v1/admin/rollback"},
      {"POST", "/v1/feedback", kFeedbackBody, 200, "/v1/feedback"},
      {"GET", "/v1/users/u1/feedback", "", 200, "/v1/users/{user}/feedback"},
      {"DELETE", "/v1/users/u1", "", 200, "/v1/users/{user}"},
      {"GET", "/v1/users/u1/recommendations", "", 200, "/v1/users/{user}/recommendations"},
      {"GET", "/v1/items/i1/similar", "", 200, "/v1/items/{item}/similar"},
      {"GET", "/v1/popular", "", 200, "/v1/popular"},
      {"GET", "/v1/items/i1", "", 200, "/v1/items/{item}"},
      {"PUT", "/v1/items/i1", kItemBody, 200, "/v1/items/{item}"},
      {"DELETE", "/v1/items/i1", "", 200, "/v1/items/{item}"},
  };
}

TEST_F(ApiTest, EveryRouteOfTheTableIsReachableAndNamedByItsPattern) {
  for (const RouteCase& c : EveryRoute()) {
    SCOPED_TRACE(c.method + " " + c.target);
    const HttpResponse r = Call(c.method, c.target, kKey, c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(r.route, c.route);
  }
  EXPECT_EQ(retrain_.noted, 1u);  // the feedback route told the retrainer
}

TEST_F(ApiTest, RoutesAnswerWithTheirHandlersBodies) {
  EXPECT_EQ(Call("GET", "/healthz").body, R"({"status":"ok"})");
  EXPECT_EQ(Call("GET", "/readyz").body, R"({"status":"ready","model_version":"v000001"})");
  EXPECT_EQ(Call("POST", "/v1/admin/rollback", kKey).body, R"({"model_version":"v000000"})");
  EXPECT_EQ(Call("POST", "/v1/admin/retrain", kKey).body, R"({"status":"started"})");
  EXPECT_EQ(json::parse(Call("POST", "/v1/admin/retrain?wait=true", kKey).body)["outcome"],
            "skipped");
  EXPECT_EQ(Call("GET", "/v1/admin/retrain", kKey).body, R"({"running":false,"last":null})");
  const HttpResponse metrics = Call("GET", "/metrics");
  EXPECT_NE(metrics.body.find("recloop_http_connections 3"), std::string::npos);
  EXPECT_NE(metrics.body.find("fake_retrain_metric 1"), std::string::npos);
  const json users = json::parse(Call("GET", "/v1/users?n=2&offset=1").body);
  EXPECT_EQ(users, json::parse(R"({"users":["u1","u2"],"total":40})"));
  const HttpResponse page = Call("GET", "/");
  EXPECT_EQ(page.content_type.rfind("text/html", 0), 0u) << page.content_type;
  EXPECT_EQ(Header(page, "X-Content-Type-Options"), "nosniff");
}

// The contract is compiled in and served as YAML, and ApiRoutes lists the table
// (tests/api/openapi_test.py compares it with the spec against a running server).
TEST_F(ApiTest, ServesTheOpenApiContractAndListsTheRouteTable) {
  const HttpResponse spec = Call("GET", "/openapi.yaml");
  EXPECT_EQ(spec.status, 200);
  EXPECT_EQ(spec.content_type, "application/yaml");
  EXPECT_EQ(spec.body.rfind("openapi: 3.1.0\n", 0), 0u);
  EXPECT_NE(spec.body.find("\n  /v1/users/{user}/recommendations:\n"), std::string::npos);
  const std::vector<ApiRoute> routes = ApiRoutes();
  for (const ApiRoute& r : routes) {
    EXPECT_NE(spec.body.find("\n  " + r.pattern + ":\n"), std::string::npos) << r.pattern;
  }
  for (const RouteCase& c : EveryRoute()) {
    const bool listed = std::any_of(routes.begin(), routes.end(), [&](const ApiRoute& r) {
      return c.method == r.method && c.route == r.pattern;
    });
    EXPECT_TRUE(listed) << c.method << " " << c.route;
  }
  EXPECT_EQ(routes.front().scope, "public");
  EXPECT_EQ(routes.back().pattern, "/{static}");
}

TEST_F(ApiTest, UnknownRoutesAre404Unmatched) {
  for (const std::string target :
       {"/nope", "/v1", "/v1/nope", "/v1/admin/foo", "/v1/users/u1/x", "/v1/items/i1/similar/x",
        "/healthz/x", "//", "/storefront.jsx", "/storefront%2Ejs"}) {
    SCOPED_TRACE(target);
    const HttpResponse r = Call("GET", target, kKey);
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(ErrorCode(r), "not_found");
    EXPECT_EQ(r.route, "unmatched");
  }
  const HttpResponse relative = Call("GET", "v1/popular");
  EXPECT_EQ(relative.status, 400);
  EXPECT_EQ(ErrorCode(relative), "bad_request");
  EXPECT_EQ(relative.route, "unmatched");
}

TEST_F(ApiTest, PercentEncodedPathsMatchTheirDecodedPattern) {
  const HttpResponse r = Call("GET", "/v1/%75sers/u1/recommendations");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.route, "/v1/users/{user}/recommendations");
  EXPECT_EQ(json::parse(Call("GET", "/v1/items/i%31").body)["item"], "i1");
}

TEST_F(ApiTest, WrongMethodIs405WithThePatternsMethodsInAllow) {
  const std::vector<std::pair<std::string, std::string>> allow = {
      {"/", "GET"},
      {"/storefront.js", "GET"},
      {"/healthz", "GET"},
      {"/readyz", "GET"},
      {"/openapi.yaml", "GET"},
      {"/metrics", "GET"},
      {"/v1/users", "GET"},
      {"/v1/model", "GET"},
      {"/v1/admin/retrain", "GET, POST"},
      {"/v1/admin/rollback", "POST"},
      {"/v1/feedback", "POST"},
      {"/v1/users/u1/feedback", "GET"},
      {"/v1/users/u1", "DELETE"},
      {"/v1/users/u1/recommendations", "GET"},
      {"/v1/items/i1/similar", "GET"},
      {"/v1/popular", "GET"},
      {"/v1/items/i1", "GET, PUT, DELETE"},
  };
  Configure("", false);  // 405 comes before the admin routes' 403
  for (const auto& [target, methods] : allow) {
    SCOPED_TRACE(target);
    const HttpResponse r = Call("PATCH", target);
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(ErrorCode(r), "method_not_allowed");
    EXPECT_EQ(Header(r, "Allow"), methods);
    EXPECT_NE(r.route, "unmatched");
  }
  EXPECT_EQ(Call("PATCH", "/v1/items/i1").route, "/v1/items/{item}");
}

// With a key configured: public and read routes need none (auth_reads off), every other scope
// needs it, and a wrong key is no key.
TEST_F(ApiTest, EachScopeNeedsTheKeyWhenOneIsConfigured) {
  for (const RouteCase& c : EveryRoute()) {
    SCOPED_TRACE(c.method + " " + c.target);
    const bool is_read = c.method == "GET" && c.route.rfind("/v1/admin", 0) != 0;
    for (const std::string key : {"", "wrong-key", "secret-kez"}) {
      const HttpResponse r = Call(c.method, c.target, key, c.body);
      if (is_read) {
        EXPECT_NE(r.status, 401) << r.body;
        continue;
      }
      EXPECT_EQ(r.status, 401) << r.body;
      EXPECT_EQ(ErrorCode(r), "unauthorized");
      EXPECT_EQ(Header(r, "WWW-Authenticate"), "Bearer");
      EXPECT_EQ(r.route, c.route);
    }
  }
  // The scheme is case-insensitive, the key is not.
  HttpRequest lower;
  lower.method = "DELETE";
  lower.target = "/v1/items/i3";
  lower.headers.emplace_back("authorization", std::string("bearer ") + kKey);
  EXPECT_EQ(api_->Handle(lower).status, 200);
}

TEST_F(ApiTest, WithoutAKeyOnlyAdminRoutesAreRefusedWith403) {
  Configure("", false);
  for (const RouteCase& c : EveryRoute()) {
    SCOPED_TRACE(c.method + " " + c.target);
    const HttpResponse r = Call(c.method, c.target, "", c.body);
    if (c.route.rfind("/v1/admin", 0) == 0) {
      EXPECT_EQ(r.status, 403);
      EXPECT_EQ(ErrorCode(r), "admin_disabled");
      // Sending a key does not help: the server has none to compare with.
      EXPECT_EQ(Call(c.method, c.target, kKey).status, 403);
    } else {
      EXPECT_EQ(r.status, c.status) << r.body;
    }
  }
}

TEST_F(ApiTest, AuthReadsPutsTheKeyOnReadRoutesButNotPublicOnes) {
  Configure(kKey, /*auth_reads=*/true);
  for (const std::string target : {"/healthz", "/readyz", "/", "/storefront.js", "/openapi.yaml"}) {
    EXPECT_EQ(Call("GET", target).status, 200) << target;
  }
  for (const std::string target :
       {"/metrics", "/v1/users", "/v1/model", "/v1/popular", "/v1/users/u1/recommendations",
        "/v1/items/i1/similar", "/v1/items/i1", "/v1/users/u1/feedback"}) {
    SCOPED_TRACE(target);
    const HttpResponse r = Call("GET", target);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(Header(r, "WWW-Authenticate"), "Bearer");
    EXPECT_EQ(Call("GET", target, kKey).status, 200);
  }
  // auth_reads without a key configured asks for nothing.
  Configure("", /*auth_reads=*/true);
  EXPECT_EQ(Call("GET", "/v1/popular").status, 200);
}

TEST_F(ApiTest, RoutesWithoutParametersRefuseAQuery) {
  const std::vector<RouteCase> refused = {
      {"GET", "/v1/model?x=1", "", 400, "/v1/model"},
      {"POST", "/v1/feedback?x=1", kFeedbackBody, 400, "/v1/feedback"},
      {"DELETE", "/v1/users/u1?x=1", "", 400, "/v1/users/{user}"},
      {"GET", "/v1/items/i1?x=1", "", 400, "/v1/items/{item}"},
      {"PUT", "/v1/items/i1?x=1", kItemBody, 400, "/v1/items/{item}"},
      {"DELETE", "/v1/items/i1?x=1", "", 400, "/v1/items/{item}"},
      {"GET", "/v1/admin/retrain?x=1", "", 400, "/v1/admin/retrain"},
      {"POST", "/v1/admin/rollback?x=1", "", 400, "/v1/admin/rollback"},
  };
  for (const RouteCase& c : refused) {
    SCOPED_TRACE(c.method + " " + c.target);
    const HttpResponse r = Call(c.method, c.target, kKey, c.body);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(ErrorCode(r), "unknown_parameter");
    EXPECT_EQ(r.route, c.route);
  }
  EXPECT_TRUE(live_->GetItem("i1") == std::nullopt);  // the refused PUT changed nothing
  // Routes that take parameters refuse only keys they do not know; health checks ignore them.
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/popular?exclude=i1")), "unknown_parameter");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/users?details=true")), "unknown_parameter");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/users/u1/feedback?x=1")), "unknown_parameter");
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/admin/retrain?now=1", kKey)), "unknown_parameter");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/popular?n=0")), "bad_parameter");
  EXPECT_EQ(Call("GET", "/v1/popular?n=3&category=x&details=false").status, 200);
  EXPECT_EQ(Call("GET", "/healthz?x=1").status, 200);
  EXPECT_EQ(Call("GET", "/metrics?x=1").status, 200);
}

TEST_F(ApiTest, PathIdsMustBeNonEmptyAndAtMostTheLimit) {
  const std::string longest(512, 'a');
  const std::string too_long(513, 'a');
  std::string encoded_too_long;
  for (int i = 0; i < 513; ++i) encoded_too_long += "%61";  // 1539 bytes sent, 513 decoded
  const std::vector<RouteCase> cases = {
      {"GET", "/v1/users/" + too_long + "/recommendations", "", 400,
       "/v1/users/{user}/recommendations"},
      {"GET", "/v1/users/" + encoded_too_long + "/recommendations", "", 400,
       "/v1/users/{user}/recommendations"},
      {"GET", "/v1/items/" + too_long + "/similar", "", 400, "/v1/items/{item}/similar"},
      {"GET", "/v1/users/" + too_long + "/feedback", "", 400, "/v1/users/{user}/feedback"},
      {"DELETE", "/v1/users/" + too_long, "", 400, "/v1/users/{user}"},
      {"GET", "/v1/items/" + too_long, "", 400, "/v1/items/{item}"},
      {"GET", "/v1/items/", "", 400, "/v1/items/{item}"},
      {"DELETE", "/v1/users/", "", 400, "/v1/users/{user}"},
      {"GET", "/v1/users//recommendations", "", 400, "/v1/users/{user}/recommendations"},
  };
  for (const RouteCase& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target.substr(0, 40));
    const HttpResponse r = Call(c.method, c.target, kKey);
    EXPECT_EQ(r.status, 400);
    // An empty ID is a bad parameter; a long one names the ID cap.
    const bool empty = c.target.find("//") != std::string::npos || c.target.back() == '/';
    EXPECT_EQ(ErrorCode(r), empty ? "bad_parameter" : "id_too_long");
    EXPECT_EQ(r.route, c.route);
  }
  // 512 bytes is an ID: an unknown user is a new customer (popular items); an unknown item 404.
  EXPECT_EQ(Call("GET", "/v1/users/" + longest + "/recommendations").status, 200);
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/items/" + longest + "/similar")), "unknown_item");
}

TEST_F(ApiTest, FeedbackRoutesWithoutAStoreAnswer404) {
  api_ =
      std::make_unique<Api>(ApiServices{.live = live_.get(), .metrics = &metrics_}, ApiOptions{});
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/feedback", "", kFeedbackBody)), "feedback_disabled");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/users/u1/feedback")), "feedback_disabled");
  EXPECT_EQ(ErrorCode(Call("DELETE", "/v1/users/u1")), "feedback_disabled");
  // No retrainer either: admin routes say so once authorised.
  ApiOptions with_key;
  with_key.api_key = kKey;
  api_ = std::make_unique<Api>(ApiServices{.live = live_.get(), .metrics = &metrics_}, with_key);
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/admin/retrain", kKey)), "retraining_disabled");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/admin/retrain", kKey)), "retraining_disabled");
  EXPECT_EQ(ErrorCode(Call("POST", "/v1/admin/rollback", kKey)), "retraining_disabled");
}

TEST_F(ApiTest, DetailsComeFromTheSnapshotsCatalogue) {
  ASSERT_OK(live_->SetItem("i5", {{"Kitchen", "cluster-2"}, true, "Kettle"}));
  ASSERT_OK(live_->SetItem("i7", {{}, true, "Toaster"}));
  ASSERT_OK(live_->SetItem("not-in-model", {{"Garden"}, true, "Rake"}));
  // The snapshot carries every model item's title and category names.
  const auto snap = live_->Get();
  const int32_t i5 = *snap->model->items.Find("i5");
  const int32_t i6 = *snap->model->items.Find("i6");
  EXPECT_EQ(snap->Title(i5), "Kettle");
  EXPECT_EQ(snap->CategoryNames(i5), (std::vector<std::string>{"Kitchen", "cluster-2"}));
  EXPECT_EQ(snap->Title(i6), "");
  EXPECT_TRUE(snap->CategoryNames(i6).empty());

  const json list = json::parse(Call("GET", "/v1/popular?n=300&details=true").body);
  ASSERT_EQ(list["items"].size(), 300u);
  int described = 0;
  for (const json& item : list["items"]) {
    const auto entry = live_->GetItem(item["item"].get<std::string>());
    EXPECT_EQ(item["title"], entry ? entry->title : "") << item.dump();
    EXPECT_EQ(item["categories"], entry ? json(entry->categories) : json::array()) << item.dump();
    described += entry.has_value();
  }
  EXPECT_EQ(described, 2);
  // A later change is in the next snapshot; without details, no title or categories.
  ASSERT_OK(live_->SetItem("i5", {{"Garden"}, true, "Watering can"}));
  const json again = json::parse(Call("GET", "/v1/popular?n=300&details=true").body);
  for (const json& item : again["items"]) {
    if (item["item"] == "i5") {
      EXPECT_EQ(item["title"], "Watering can");
      EXPECT_EQ(item["categories"], json::array({"Garden"}));
    }
  }
  const json plain = json::parse(Call("GET", "/v1/popular?n=3").body);
  EXPECT_FALSE(plain["items"][0].contains("title"));
  EXPECT_EQ(plain["model_version"], "v000001");
}

// Issue 20 item 4: a version with a rating head answers ?predicted_rating=true with the head's
// prediction for the user and each item; null where the head does not know them.
TEST_F(ApiTest, PredictedRatingsComeFromTheVersionsRatingHead) {
  // v000001 has no head: the key is there, null.
  const json headless =
      json::parse(Call("GET", "/v1/users/u3/recommendations?n=5&predicted_rating=true").body);
  ASSERT_EQ(headless["items"].size(), 5u);
  for (const json& item : headless["items"]) EXPECT_TRUE(item["predicted_rating"].is_null());

  // v000002: the same ranking model with a head that knows users u0..u29 and items i0..i249.
  FactorModel head = test::RandomModel(30, 250, 4, /*explicit_feedback=*/true, 5);
  head.params.algorithm = Algorithm::kAls;
  head.min_value = 1.0f;
  head.max_value = 5.0f;
  head.user_bias.array() += 3.0f;  // some predictions above the range: clamped
  SaveModelOptions save;
  save.rating_head = &head;
  const FactorModel model = test::RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
  ASSERT_OK(SaveModel(model, dir_.File("models"), save).status());
  ASSERT_OK(live_->Reload());
  ASSERT_NE(live_->Get()->rating_head, nullptr);

  const HttpResponse r = Call("GET", "/v1/users/u3/recommendations?n=300&predicted_rating=true");
  ASSERT_EQ(r.status, 200) << r.body;
  const json list = json::parse(r.body);
  EXPECT_EQ(list["model_version"], "v000002");
  const int32_t u3 = *head.users.Find("u3");
  int known = 0, unknown = 0, clamped = 0;
  for (const json& item : list["items"]) {
    const std::string id = item["item"].get<std::string>();
    ASSERT_TRUE(item.contains("predicted_rating")) << item.dump();
    const auto i = head.items.Find(id);
    if (!i) {
      EXPECT_TRUE(item["predicted_rating"].is_null()) << item.dump();
      ++unknown;
      continue;
    }
    ASSERT_TRUE(item["predicted_rating"].is_number()) << item.dump();
    const double rating = item["predicted_rating"].get<double>();
    EXPECT_TRUE(std::isfinite(rating));
    EXPECT_EQ(rating, static_cast<double>(head.PredictRating(u3, *i))) << id;
    EXPECT_GE(rating, 1.0);
    EXPECT_LE(rating, 5.0);
    ++known;
    clamped += rating == 5.0;
  }
  EXPECT_GT(known, 0);
  EXPECT_GT(clamped, 0);
  EXPECT_GT(unknown, 0);  // i250..i299

  // A user the head does not know (u35 is in the ranking model only; "nobody" in neither).
  for (const std::string user : {"u35", "nobody"}) {
    const json other = json::parse(
        Call("GET", "/v1/users/" + user + "/recommendations?n=5&predicted_rating=true").body);
    ASSERT_EQ(other["items"].size(), 5u) << user;
    for (const json& item : other["items"]) {
      EXPECT_TRUE(item["predicted_rating"].is_null()) << user << " " << item.dump();
    }
  }
  // Absent or false: unchanged output.
  for (const std::string query : {"n=5", "n=5&predicted_rating=false"}) {
    const json plain = json::parse(Call("GET", "/v1/users/u3/recommendations?" + query).body);
    ASSERT_EQ(plain["items"].size(), 5u) << query;
    EXPECT_FALSE(plain["items"][0].contains("predicted_rating")) << query;
  }
  // A catalogue change publishes a snapshot that keeps the head.
  const auto loaded_head = live_->Get()->rating_head;
  ASSERT_OK(live_->SetItem("i5", {{"Kitchen"}, true, "Kettle"}));
  EXPECT_EQ(live_->Get()->rating_head, loaded_head);

  // Bad values, as for details; other routes do not take it.
  for (const std::string query : {"predicted_rating=yes", "predicted_rating=",
                                  "predicted_rating=true&predicted_rating=true"}) {
    const HttpResponse bad = Call("GET", "/v1/users/u3/recommendations?" + query);
    EXPECT_EQ(bad.status, 400) << query;
    EXPECT_EQ(ErrorCode(bad), "bad_parameter") << query;
  }
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/popular?predicted_rating=true")), "unknown_parameter");
  EXPECT_EQ(ErrorCode(Call("GET", "/v1/items/i1/similar?predicted_rating=true")),
            "unknown_parameter");
}

}  // namespace
}  // namespace recloop
