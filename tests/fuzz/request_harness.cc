#include "tests/fuzz/request_harness.h"

#include <optional>
#include <random>
#include <span>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/logger.h"
#include "boost/asio/buffer.hpp"
#include "boost/beast/http.hpp"
#include "engine/model_io.h"
#include "nlohmann/json.hpp"
#include "serving/retrain_control.h"
#include "tests/engine/random_model.h"

namespace recloop::test {

namespace http = boost::beast::http;

namespace {

// The admin routes' other side, without training: a retrain "promotes" nothing and answers at
// once, a rollback succeeds every other time. Enough for the router's admin paths.
class RetrainDouble : public RetrainControl {
 public:
  void NoteEvents(std::span<const Event> events) override { noted_ += events.size(); }
  absl::StatusOr<std::optional<RetrainOutcome>> RetrainNow(bool wait) override {
    last_.emplace();
    last_->outcome = "skipped";
    last_->message = "fuzz harness";
    last_->new_events = noted_;
    if (!wait) return std::nullopt;
    return last_;
  }
  absl::StatusOr<std::string> Rollback() override {
    if (++rollbacks_ % 2 == 0) return absl::FailedPreconditionError("nothing to roll back to");
    return std::string("v-fuzz");
  }
  bool running() const override { return false; }
  std::optional<RetrainOutcome> Last() const override { return last_; }
  std::string RenderMetrics() const override { return "recloop_retrains_total 0\n"; }

 private:
  int64_t noted_ = 0;
  int64_t rollbacks_ = 0;
  std::optional<RetrainOutcome> last_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RequestHarness>> RequestHarness::Create() {
  std::unique_ptr<RequestHarness> h(new RequestHarness());
  // Under /dev/shm where there is one: catalogue writes fsync, and a fuzzer makes many.
  std::error_code ec;
  std::filesystem::path base = "/dev/shm";
  if (!std::filesystem::is_directory(base, ec)) base = std::filesystem::temp_directory_path();
  std::random_device rd;
  h->dir_ = base / absl::StrCat("recloop_fuzz_", rd(), rd());
  std::filesystem::create_directories(h->dir_);
  const FactorModel model = RandomModel(40, 300, 8, /*explicit_feedback=*/false, 11);
  if (auto saved = SaveModel(model, (h->dir_ / "models").string()); !saved.ok()) {
    return saved.status();
  }
  auto live = LiveModel::Open({(h->dir_ / "models").string(), ""});
  if (!live.ok()) return live.status();
  h->live_ = std::move(live).value();
  auto events = EventStore::Open({.path = (h->dir_ / "events.db").string()});
  if (!events.ok()) return events.status();
  h->events_ = std::move(events).value();
  ApiOptions api;
  api.max_n = 100;
  // One allowed origin, so that preflights and the CORS headers are on the path; the address
  // limits stay off (AnswerRequestBytes has no peer) and the caps small enough to reach.
  api.cors.allowed_origins = {std::string(kFuzzOrigin)};
  api.max_exclude = 8;
  api.max_categories = 4;
  api.json.max_depth = 6;
  api.json.max_elements = 64;
  h->folder_ =
      std::make_unique<FeedbackFolder>(h->live_.get(), h->events_.get(), api.feedback,
                                       FoldQueueOptions{.threads = 1}, &h->metrics_, NullLog());
  h->retrain_ = std::make_unique<RetrainDouble>();
  std::vector<ApiKey> keys = {LegacyApiKey(kFuzzApiKey),
                              {"reader", kScopeRead, Sha256(kFuzzReadKey)},
                              {"page", kScopeFeedback, Sha256(kFuzzFeedbackKey)}};
  h->keys_ = std::make_unique<ApiKeys>(/*enabled=*/true, std::move(keys));
  h->api_ = std::make_unique<Api>(ApiServices{.live = h->live_.get(),
                                              .metrics = &h->metrics_,
                                              .events = h->events_.get(),
                                              .folder = h->folder_.get(),
                                              .retrain = h->retrain_.get(),
                                              .keys = h->keys_.get(),
                                              .log = NullLog()},
                                  api);
  // Small limits, so that short inputs reach the 413 and 431 paths.
  h->options_.max_header_bytes = 1024;
  h->options_.max_body_bytes = 2048;
  return h;
}

RequestHarness::~RequestHarness() {
  api_.reset();
  folder_.reset();  // stops its fold threads before the store and the model go
  events_.reset();
  live_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

namespace {

std::string CheckResponse(const http::response<http::string_body>& res) {
  const int status = res.result_int();
  if (status < 200 || status >= 500) return absl::StrCat("status ", status);
  const auto type = res[http::field::content_type];
  const bool is_json = type.starts_with("application/json");
  if (!is_json && status >= 400) return absl::StrCat("error ", status, " without a JSON body");
  if (!is_json) return "";
  const nlohmann::json body =
      nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return absl::StrCat("status ", status, ": body is not JSON");
  if (status >= 400) {
    const auto err = body.find("error");
    if (err == body.end() || !err->is_object() || !err->contains("code") ||
        !(*err)["code"].is_string() || !err->contains("message") ||
        !(*err)["message"].is_string()) {
      return absl::StrCat("status ", status, ": error body without error.code/message");
    }
  }
  return "";
}

}  // namespace

std::string RequestHarness::Check(std::string_view raw) {
  last_answer_ = AnswerRequestBytes(raw, options_, [this](const HttpRequest& r) {
    HttpResponse res = api_->Handle(r);
    metrics_.Observe(res.route, res.status, 1.0);
    return res;
  });
  std::string_view rest = last_answer_;
  for (int n = 1; !rest.empty(); ++n) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(64 << 20);
    boost::beast::error_code ec;
    while (!rest.empty() && !parser.is_done()) {
      const std::size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(used);
      if (ec == http::error::need_more && used > 0) ec = {};
      if (ec) break;
    }
    if (ec || !parser.is_done()) {
      return absl::StrCat("response ", n,
                          " does not parse as HTTP: ", ec ? ec.message() : "incomplete");
    }
    const auto& res = parser.get();
    if (std::string problem = CheckResponse(res); !problem.empty()) {
      return absl::StrCat("response ", n, ": ", problem);
    }
    if (!res.keep_alive() && !rest.empty()) {
      return absl::StrCat("bytes follow response ", n, ", which closes the connection");
    }
  }
  return "";
}

}  // namespace recloop::test
