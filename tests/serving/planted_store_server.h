// Test fixture shared by the feedback-loop tests: a model trained on a generated store with
// planted taste clusters, saved into a temporary models directory, and a real HTTP server on
// 127.0.0.1 in front of whatever handler the test builds over it.
#ifndef RECLOOP_TESTS_SERVING_PLANTED_STORE_SERVER_H_
#define RECLOOP_TESTS_SERVING_PLANTED_STORE_SERVER_H_

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/generator.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "serving/http_server.h"
#include "serving/metrics.h"
#include "tbb/global_control.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"
#include "training/train.h"

namespace recloop::test {

class PlantedStoreServer : public ::testing::Test {
 protected:
  static constexpr int kClusters = 5;

  // The model the server starts with, and the kind of feedback generated for it: implicit ALS
  // with K = 16 by default.
  virtual TrainOptions Training() const {
    TrainOptions t;
    t.feedback = FeedbackKind::kImplicit;
    t.als.factors = 16;
    t.als.iterations = 10;
    return t;
  }

  // The generated store: 800 users, 400 items in kClusters clusters, 90% of a user's
  // interactions in theirs.
  static GeneratorOptions Planted(FeedbackKind feedback, uint64_t seed) {
    GeneratorOptions g;
    g.users = 800;
    g.items = 400;
    g.interactions = 40'000;
    g.clusters = kClusters;
    g.in_cluster = 0.9;
    g.feedback = feedback;
    g.seed = seed;
    return g;
  }

  // Planted(Training()'s feedback, seed 5), and Training()'s model of it saved as
  // MODELS/v000001.
  void SetUp() override {
    // One oneTBB thread for the set-up: the tests are about the server, and ThreadSanitizer
    // cannot see oneTBB's own synchronisation (libtbb is not instrumented).
    const tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
    const TrainOptions t = Training();
    ASSERT_OK_AND_ASSIGN(store_, GenerateStore(Planted(t.feedback, 5)));
    ASSERT_OK_AND_ASSIGN(const FactorModel model, TrainModel(store_.data, t));
    ASSERT_OK(SaveModel(model, models_dir()).status());
  }

  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string models_dir() const { return dir_.File("models"); }

  // Serves `handler` on 127.0.0.1 (any free port) with 2 I/O threads, counting into metrics_,
  // and waits (bounded) until /readyz answers 200.
  void StartServer(HttpHandler handler) {
    HttpServerOptions http;
    http.host = "127.0.0.1";
    http.port = 0;
    http.threads = 2;
    ASSERT_OK_AND_ASSIGN(server_, HttpServer::Create(
                                      http, std::move(handler),
                                      [this](const HttpRequest&, const HttpResponse& res, double us) {
                                        metrics_.Observe(res.route, res.status, us);
                                      }));
    ASSERT_OK(server_->Start());
    thread_ = std::thread([this] { server_->Run(); });
    for (int i = 0; i < 500; ++i) {
      if (Client(server_->port()).Get("/readyz").status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "server never became ready";
  }

  uint16_t port() const { return server_->port(); }

  // The planted cluster of a generated item, by external ID.
  int ClusterOf(const std::string& item) const {
    return store_.item_cluster[*store_.data.items.Find(item)];
  }

  // `n` items of `cluster`, the most interacted-with first (the ones a customer finds).
  std::vector<std::string> ItemsOf(int cluster, int n) const {
    std::vector<int64_t> counts(store_.data.items.size(), 0);
    for (int32_t i : store_.data.item) ++counts[i];
    std::vector<int32_t> items;
    for (int32_t i = 0; i < store_.data.items.size(); ++i) {
      if (store_.item_cluster[i] == cluster) items.push_back(i);
    }
    std::sort(items.begin(), items.end(),
              [&](int32_t a, int32_t b) { return counts[a] > counts[b]; });
    std::vector<std::string> out;
    for (int j = 0; j < n && j < static_cast<int>(items.size()); ++j) {
      out.push_back(store_.data.items.External(items[j]));
    }
    return out;
  }

  TempDir dir_;
  GeneratedStore store_;
  Metrics metrics_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_SERVING_PLANTED_STORE_SERVER_H_
