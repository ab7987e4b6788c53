// The cache of users' ranked candidates (serving/ranked_cache.h, issue 21): its bound, its
// accounting and the filters applied to a cached list, then the server over real sockets, where
// every cached answer must equal the answer without a cache (the same folder, the same live
// model) under concurrent feedback, and after a catalogue DELETE and a model swap.
#include "serving/ranked_cache.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "data/event_store.h"
#include "engine/model_edit.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "serving/api.h"
#include "serving/cache_warmer.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"
#include "tbb/global_control.h"
#include "tests/serving/planted_store_server.h"
#include "tests/serving/test_client.h"
#include "tests/test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

using json = nlohmann::json;
using test::Client;
using test::Reply;
namespace http = boost::beast::http;

std::shared_ptr<const RankedList> List(uint64_t snap, uint64_t fold, std::vector<int32_t> items,
                                       bool complete = false) {
  auto list = std::make_shared<RankedList>();
  list->ranking_serial = snap;
  list->fold_serial = fold;
  list->complete = complete;
  for (int32_t i : items) {
    list->items.push_back(
        {i, 1.0f / static_cast<float>(i + 1), RecommendationSource::kPersonalized});
  }
  return list;
}

std::vector<int32_t> Items(const std::vector<Recommendation>& recs) {
  std::vector<int32_t> out;
  for (const auto& r : recs) out.push_back(r.item);
  return out;
}

TEST(RankedCache, HitsOnlyForTheSerialsItWasRankedFrom) {
  RankedCache cache({.candidates = 8, .max_users = 100});
  EXPECT_EQ(cache.Find("u1", 1, 0), nullptr);
  cache.Put("u1", List(1, 0, {3, 1, 2}));
  ASSERT_NE(cache.Find("u1", 1, 0), nullptr);
  EXPECT_EQ(cache.Find("u1", 1, 7), nullptr);  // folded in since
  EXPECT_EQ(cache.users(), 0);                 // ... which dropped the stale entry
  cache.Put("u1", List(1, 7, {3}));
  EXPECT_EQ(cache.Find("u1", 2, 7), nullptr);  // a new model
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 3);
  EXPECT_EQ(cache.memory_bytes(), 0);
}

TEST(RankedCache, TheBoundEvictsTheLeastRecentlyUsedAndCountsMemory) {
  // 16 shards of at most 1 user each.
  RankedCache cache({.candidates = 4, .max_users = 16});
  for (int u = 0; u < 200; ++u) cache.Put("user-" + std::to_string(u), List(1, 0, {1, 2, 3, 4}));
  EXPECT_LE(cache.users(), 16);
  EXPECT_EQ(cache.evictions(), 200 - cache.users());
  EXPECT_GE(cache.memory_bytes(), cache.users() * static_cast<int64_t>(4 * sizeof(Recommendation)));
  // The latest user of each shard stayed.
  EXPECT_NE(cache.Find("user-199", 1, 0), nullptr);
  const std::string text = cache.RenderMetrics();
  EXPECT_NE(text.find("recloop_ranked_cache_evictions_total " + std::to_string(cache.evictions())),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("recloop_ranked_cache_bytes " + std::to_string(cache.memory_bytes())),
            std::string::npos);
}

TEST(RankedCache, DisabledCacheStoresNothing) {
  RankedCache cache({.candidates = 0});
  EXPECT_FALSE(cache.enabled());
  cache.Put("u1", List(1, 0, {1}));
  EXPECT_EQ(cache.Find("u1", 1, 0), nullptr);
  EXPECT_EQ(cache.users(), 0);
}

TEST(AnswerFromRankedList, AppliesOffsetExcludeAndCategoriesInRankOrder) {
  ItemCatalog catalog;
  // Items 0..9; item i is in category i % 2.
  for (int i = 0; i <= 10; ++i) catalog.category_indptr.push_back(i);
  for (int i = 0; i < 10; ++i) catalog.category_ids.push_back(i % 2);
  const auto list = List(1, 0, {9, 8, 7, 6, 5, 4, 3, 2});
  RecommendOptions o;
  o.n = 3;
  o.offset = 1;
  o.exclude = {7};
  auto answer = AnswerFromRankedList(*list, o, &catalog);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(Items(*answer), (std::vector<int32_t>{8, 6, 5}));
  o.categories = {1};  // odd items
  // Odd, not 7, past the first: 5, 3, and then the list runs out while it was cut: unknown.
  EXPECT_FALSE(AnswerFromRankedList(*list, o, &catalog).has_value());
  o.n = 2;
  answer = AnswerFromRankedList(*list, o, &catalog);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(Items(*answer), (std::vector<int32_t>{5, 3}));
  // A complete list (every qualifying item) answers short.
  o.n = 5;
  answer = AnswerFromRankedList(*List(1, 0, {9, 8, 7, 6, 5, 4, 3, 2}, true), o, &catalog);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(Items(*answer), (std::vector<int32_t>{5, 3}));
  // The catalogue's availability filters the list as it is used (a catalogue change keeps it).
  ItemCatalog available;
  available.available.assign(10, 1);
  available.available[8] = 0;
  o = RecommendOptions{};
  o.n = 3;
  answer = AnswerFromRankedList(*list, o, &available);
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(Items(*answer), (std::vector<int32_t>{9, 7, 6}));
  o.exclude_unavailable = false;
  EXPECT_EQ(Items(*AnswerFromRankedList(*list, o, &available)), (std::vector<int32_t>{9, 8, 7}));
  o.categories = {1};
  // A category filter without a catalogue is the search's to refuse.
  EXPECT_FALSE(AnswerFromRankedList(*list, o, nullptr).has_value());
}

// The server with the cache (over sockets) against the same Api without it (called directly),
// both over one live model and one folder, so that they must agree on every answer.
class RankedCacheServerTest : public test::PlantedStoreServer {
 protected:
  void SetUp() override {
    PlantedStoreServer::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_OK_AND_ASSIGN(live_, LiveModel::Open({models_dir(), ""}));
    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    folder_ =
        std::make_unique<FeedbackFolder>(live_.get(), events_.get(), FeedbackOptions{},
                                         FoldQueueOptions{.threads = 2}, &metrics_, NullLog());
    ApiServices services{.live = live_.get(),
                         .metrics = &metrics_,
                         .events = events_.get(),
                         .folder = folder_.get()};
    ApiServices with_cache = services;
    with_cache.ranked_cache = &cache_;
    api_ = std::make_unique<Api>(with_cache, ApiOptions{});
    ApiOptions uncached;
    uncached.ranked_cache.candidates = 0;
    reference_ = std::make_unique<Api>(services, uncached);
    StartServer([this](const HttpRequest& r) { return api_->Handle(r); });
  }

  void TearDown() override {
    PlantedStoreServer::TearDown();
    api_.reset();
    reference_.reset();
    folder_.reset();
  }

  // A list body without its recommendation_id (each response has its own).
  static std::string WithoutId(std::string body) {
    const std::string key = ",\"recommendation_id\":\"";
    if (const size_t at = body.find(key); at != std::string::npos) {
      body.erase(at, body.find('"', at + key.size()) + 1 - at);
    }
    return body;
  }

  // The reference answer: the same request through the Api without a cache (without its id).
  std::string Reference(const std::string& target) const {
    HttpRequest req;
    req.method = "GET";
    req.target = target;
    const HttpResponse res = reference_->Handle(req);
    EXPECT_EQ(res.status, 200) << res.body;
    return WithoutId(res.body);
  }

  std::string Top(Client& c, const std::string& user) {
    const Reply r = c.Get("/v1/users/" + user + "/recommendations?n=5");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json()["items"][0]["item"];
  }

  int64_t api_cache_hits() const { return cache_.hits(); }

  // Trains another model on the same store (seed `seed`, one thread: deterministic), saves it
  // as the newest version and makes it live.
  void SwapToANewVersion(int seed) {
    TrainOptions t = Training();
    t.als.seed = seed;
    {
      const tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
      ASSERT_OK_AND_ASSIGN(const FactorModel second, TrainModel(store_.data, t));
      ASSERT_OK(SaveModel(second, models_dir()).status());
    }
    ASSERT_OK(live_->Reload());
  }

  std::unique_ptr<LiveModel> live_;
  std::unique_ptr<EventStore> events_;
  std::unique_ptr<FeedbackFolder> folder_;
  RankedCache cache_{{.candidates = 32, .max_users = 10'000}};
  std::unique_ptr<Api> api_;
  std::unique_ptr<Api> reference_;
};

// Four clients, each with its own customers: a purchase, then the next list (cached, over the
// socket) must equal the uncached one and never hold what was bought; random pages and filters.
TEST_F(RankedCacheServerTest, CachedListsEqualUncachedOnesUnderConcurrentFeedback) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 40;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0), served_bought(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client c(port());
      std::mt19937 rng(t);
      for (int round = 0; round < kRounds; ++round) {
        const std::string user = "u" + std::to_string(t * 10 + static_cast<int>(rng() % 5));
        const std::string base = "/v1/users/" + user + "/recommendations";
        std::string bought;
        if (round % 3 == 0) {
          bought = Top(c, user);
          const json event =
              json::array({{{"user", user}, {"item", bought}, {"type", "purchase"}}});
          EXPECT_EQ(c.Send(http::verb::post, "/v1/feedback", event.dump()).status, 200);
        }
        std::string target =
            base + "?n=" + std::to_string(1 + rng() % 12) + "&offset=" + std::to_string(rng() % 4);
        if (rng() % 2 == 0) target += "&exclude=i" + std::to_string(rng() % 400);
        const Reply r = c.Get(target);
        EXPECT_EQ(r.status, 200) << r.body;
        mismatches[t] += WithoutId(r.body) != Reference(target);
        if (!bought.empty())
          served_bought[t] += r.body.find("\"" + bought + "\"") != std::string::npos;
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(mismatches[t], 0) << "client " << t;
    EXPECT_EQ(served_bought[t], 0) << "client " << t;
  }
  Client c(port());
  const std::string metrics = c.Get("/metrics").body;
  EXPECT_EQ(metrics.find("recloop_ranked_cache_hits_total 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("recloop_ranked_cache_bytes "), std::string::npos);
}

TEST_F(RankedCacheServerTest, ACatalogueDeleteTakesTheItemOutOfTheNextList) {
  Client c(port());
  const std::string target = "/v1/users/u3/recommendations?n=10";
  const std::string top = Top(c, "u3");
  ASSERT_EQ(c.Get(target).status, 200);  // cached now
  const int64_t hits = api_cache_hits();
  ASSERT_EQ(c.Send(http::verb::delete_, "/v1/items/" + top).status, 200);
  const Reply r = c.Get(target);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("\"" + top + "\""), std::string::npos) << r.body;
  EXPECT_EQ(WithoutId(r.body), Reference(target));
  // ... answered from the same cached ranking, filtered by the new catalogue.
  EXPECT_EQ(api_cache_hits(), hits + 1);
}

TEST_F(RankedCacheServerTest, AfterASwapListsComeFromTheNewVersion) {
  Client c(port());
  const std::string target = "/v1/users/u5/recommendations?n=10";
  const Reply before = c.Get(target);
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(WithoutId(c.Get(target).body), WithoutId(before.body));  // from the cache
  SwapToANewVersion(99);
  if (HasFatalFailure()) return;
  const Reply after = c.Get(target);
  ASSERT_EQ(after.status, 200);
  EXPECT_NE(after.Json()["model_version"], before.Json()["model_version"]);
  EXPECT_EQ(after.Json()["model_version"], live_->Get()->version());
  EXPECT_EQ(WithoutId(after.body), Reference(target));
}

// Under concurrent reads (four clients over the socket, their users' rankings cached and
// re-cached all along), every catalogue DELETE and the swap to a new version show in every
// response to a request sent after they were acknowledged: a deleted item is never listed again,
// and after the swap every list comes from the new version.
TEST_F(RankedCacheServerTest, DeletesAndASwapUnderConcurrentReadsShowInTheNextResponse) {
  constexpr int kReaders = 4;
  constexpr int kUsers = 20;
  constexpr int kDeletes = 8;
  std::vector<std::string> tops;  // the items to delete: users' current top items
  {
    Client c(port());
    for (int u = 0; u < kUsers && static_cast<int>(tops.size()) < kDeletes; ++u) {
      const std::string top = Top(c, "u" + std::to_string(u));
      if (std::find(tops.begin(), tops.end(), top) == tops.end()) tops.push_back(top);
    }
  }
  ASSERT_EQ(static_cast<int>(tops.size()), kDeletes);
  std::atomic<int> deleted{0};  // tops[0, deleted) are acknowledged deletions
  std::atomic<bool> swapped{false};
  std::string new_version;  // written before `swapped` is set
  std::atomic<bool> stop{false};
  std::vector<int> stale(kReaders, 0), answered(kReaders, 0);
  std::vector<std::thread> readers;
  const int64_t hits_before = api_cache_hits();
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      Client c(port());
      for (int i = 0; i < 5000 && !stop; ++i) {  // bounded
        const int acknowledged = deleted.load();
        const bool after_swap = swapped.load();
        const std::string user = "u" + std::to_string((t * 7 + i) % kUsers);
        const Reply r = c.Get("/v1/users/" + user + "/recommendations?n=10");
        if (r.status != 200) {
          ++stale[t];
          continue;
        }
        ++answered[t];
        const json body = r.Json();
        for (const json& item : body["items"]) {
          const auto end = tops.begin() + acknowledged;
          stale[t] += std::find(tops.begin(), end, item["item"].get<std::string>()) != end;
        }
        if (after_swap) stale[t] += body["model_version"] != new_version;
      }
    });
  }
  // The writes, in a lambda so that a failed ASSERT still reaches the join below.
  const auto write = [&] {
    Client c(port());
    const auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
    for (int d = 0; d < kDeletes / 2; ++d) {
      pause();
      ASSERT_EQ(c.Send(http::verb::delete_, "/v1/items/" + tops[d]).status, 200);
      deleted = d + 1;
    }
    pause();
    SwapToANewVersion(123);
    if (HasFatalFailure()) return;
    new_version = live_->Get()->version();
    swapped = true;
    for (int d = kDeletes / 2; d < kDeletes; ++d) {
      pause();
      ASSERT_EQ(c.Send(http::verb::delete_, "/v1/items/" + tops[d]).status, 200);
      deleted = d + 1;
    }
    pause();
  };
  write();
  stop = true;
  for (auto& th : readers) th.join();
  for (int r = 0; r < kReaders; ++r) {
    EXPECT_EQ(stale[r], 0) << "reader " << r;
    EXPECT_GT(answered[r], 0) << "reader " << r;
  }
  EXPECT_GT(api_cache_hits(), hits_before);  // the reads went through the cache
}

// An extension (new items appended and indexed, serving/new_item_indexer.h) keeps each cached
// list that none of its new items enters (CarryForward): those users' next requests are hits,
// and every answer still equals the uncached one. First an item with the zero vector (score 0:
// below the last candidate of every list whose candidates all score above 0), then one that tops
// user u0's list; the warmer then re-ranks nobody whose list still holds.
TEST_F(RankedCacheServerTest, AnExtensionKeepsTheCachedListsItsNewItemsDoNotEnter) {
  Client c(port());
  std::vector<std::string> users;
  for (int u = 0; u < 40; ++u) users.push_back("u" + std::to_string(u));
  const auto target = [](const std::string& u) {
    return "/v1/users/" + u + "/recommendations?n=10";
  };
  for (const auto& u : users) ASSERT_EQ(c.Get(target(u)).status, 200);  // ranked, cached
  // The users whose 32 candidates (the cache's) all score above 0: the zero item enters none.
  int above_zero = 0;
  for (const auto& u : users) {
    const json all = json::parse(Reference("/v1/users/" + u + "/recommendations?n=32"));
    above_zero += all["items"].back()["score"].get<float>() > 0;
  }
  ASSERT_GT(above_zero, 20) << "the test needs lists whose candidates score above 0";

  const auto extend = [&](const std::string& name, const Eigen::VectorXf& factors) {
    const auto snap = live_->Get();
    FoldedUser item;
    item.factors = factors;
    ASSERT_OK_AND_ASSIGN(FactorModel appended,
                         AppendItems(*snap->model, std::vector<std::string>{name},
                                     std::vector<FoldedUser>{item}, std::vector<float>{1.0f}));
    auto model = std::make_shared<const FactorModel>(std::move(appended));
    ASSERT_OK_AND_ASSIGN(ItemIndex index, snap->index->Extend(*model));
    ASSERT_OK_AND_ASSIGN(
        auto prepared,
        live_->PrepareExtension(model, std::make_shared<const ItemIndex>(std::move(index))));
    ASSERT_EQ(prepared->extends.size(), snap->extends.size() + 1);
    EXPECT_EQ(prepared->extends.back().serial, snap->ranking_serial);
    ASSERT_OK(folder_->ActivateExtension(prepared, {}));
  };
  const int k = static_cast<int>(live_->Get()->model->item_factors.cols());
  extend("zero", Eigen::VectorXf::Zero(k));
  if (HasFatalFailure()) return;
  int64_t hits_before = cache_.hits();
  for (const auto& u : users) {
    const Reply r = c.Get(target(u));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(WithoutId(r.body), Reference(target(u))) << u;
  }
  EXPECT_EQ(cache_.hits() - hits_before, above_zero);

  // An item along u0's own vector, 50 times as long: first in u0's list, a search for u0 again.
  const auto snap = live_->Get();
  const int32_t u0 = *snap->model->users.Find("u0");
  extend("strong", 50.0f * snap->model->user_factors.row(u0).transpose());
  if (HasFatalFailure()) return;
  const Reply first = c.Get(target("u0"));
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.Json()["items"][0]["item"], "strong");
  hits_before = cache_.hits();
  for (const auto& u : users) {
    const Reply r = c.Get(target(u));
    EXPECT_EQ(WithoutId(r.body), Reference(target(u))) << u;
  }
  EXPECT_GT(cache_.hits() - hits_before, 0);

  // The warmer, started now, finds every cached list usable: it ranks only users not cached.
  RankedCache small({.candidates = 32, .max_users = 10'000});
  int still_above_zero = 0;
  for (const auto& u : users) {
    ASSERT_OK_AND_ASSIGN(auto list, RankForCache(*live_->Get(), live_->Get()->model->users.Find(u),
                                                 nullptr, RecommendOptions{}, small.candidates()));
    still_above_zero += list->items.back().score > 0;
    small.Put(u, list);
  }
  ASSERT_GE(still_above_zero, above_zero);
  extend("zero2", Eigen::VectorXf::Zero(k));
  if (HasFatalFailure()) return;
  CacheWarmer warmer(live_.get(), folder_.get(), &small, {.poll = std::chrono::milliseconds(5)},
                     NullLog());
  for (int i = 0; i < 2000 && warmer.passes() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(warmer.passes(), 1);
  const int64_t model_users = live_->Get()->model->num_users();
  EXPECT_EQ(warmer.warmed(), model_users - still_above_zero);

  // An extension of the snapshot it warmed: its next pass ranks exactly the lists the new item
  // enters (every user has one now, none folded).
  int64_t entered = 0;
  for (int32_t u = 0; u < model_users; ++u) {
    const auto list = small.Peek(live_->Get()->model->users.External(u));
    ASSERT_NE(list, nullptr);
    entered += list->complete || list->items.back().score <= 0;
  }
  const int64_t warmed_before = warmer.warmed();
  extend("zero3", Eigen::VectorXf::Zero(k));
  if (HasFatalFailure()) return;
  for (int i = 0; i < 2000 && warmer.passes() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(warmer.passes(), 2);
  EXPECT_EQ(warmer.warmed() - warmed_before, entered);
  EXPECT_LT(entered, model_users / 2);
}

// The warmer ranks the most active users into the cache after the model goes live, and again for
// a new version; their first requests are then hits.
TEST_F(RankedCacheServerTest, TheWarmerRanksTheMostActiveUsersAfterEachSwap) {
  RankedCache small({.candidates = 16, .max_users = 100});
  CacheWarmer warmer(live_.get(), folder_.get(), &small, {.poll = std::chrono::milliseconds(5)},
                     NullLog());
  const auto wait_passes = [&](int64_t n) {
    for (int i = 0; i < 2000 && warmer.passes() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return warmer.passes() >= n;
  };
  ASSERT_TRUE(wait_passes(1));
  EXPECT_EQ(warmer.pending(), 0);
  EXPECT_EQ(small.warm_pending(), 0);
  // Up to the bound (16 shards of 7), and evicting nobody.
  EXPECT_GE(warmer.warmed(), 100);
  EXPECT_LE(warmer.warmed(), 112);
  EXPECT_EQ(small.users(), warmer.warmed());
  EXPECT_EQ(small.evictions(), 0);
  // The most active user is among them, ranked exactly as a request would be.
  const auto snap = live_->Get();
  int32_t top = 0;
  for (int32_t u = 0; u < snap->model->num_users(); ++u) {
    if (snap->model->seen.RowSize(u) > snap->model->seen.RowSize(top)) top = u;
  }
  const std::string user = snap->model->users.External(top);
  const auto list = small.Find(user, snap->ranking_serial, 0);
  ASSERT_NE(list, nullptr);
  RecommendOptions o;
  o.n = 16;
  o.exclude_unavailable = false;
  ASSERT_OK_AND_ASSIGN(const auto direct, snap->recommender->Recommend(top, o));
  EXPECT_EQ(Items(list->items), Items(direct));

  SwapToANewVersion(7);
  if (HasFatalFailure()) return;
  ASSERT_TRUE(wait_passes(2));
  EXPECT_NE(small.Find(user, live_->Get()->ranking_serial, 0), nullptr);
}

}  // namespace
}  // namespace recloop
