#include "tests/fuzz/request_harness.h"

#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "boost/asio/buffer.hpp"
#include "boost/beast/http.hpp"
#include "engine/model_io.h"
#include "nlohmann/json.hpp"
#include "tests/engine/random_model.h"

namespace recloop::test {

namespace http = boost::beast::http;

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
  ApiOptions api;
  api.api_key = std::string(kFuzzApiKey);
  api.max_n = 100;
  h->api_ =
      std::make_unique<Api>(ApiServices{.live = h->live_.get(), .metrics = &h->metrics_}, api);
  // Small limits, so that short inputs reach the 413 and 431 paths.
  h->options_.max_header_bytes = 1024;
  h->options_.max_body_bytes = 2048;
  return h;
}

RequestHarness::~RequestHarness() {
  api_.reset();
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
  const nlohmann::json body = nlohmann::json::parse(res.body(), nullptr, /*allow_exceptions=*/false);
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
      return absl::StrCat("response ", n, " does not parse as HTTP: ",
                          ec ? ec.message() : "incomplete");
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
