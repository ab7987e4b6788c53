// Replay (serving/replay.h): logged events run again through the serving path against a model.
// Without fold-in and filters it must equal eval on the same events; with fold-in, customers'
// fresh events must count; and it must rank a model that knows the planted taste above one that
// does not.
#include "serving/replay.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "data/event_store.h"
#include "data/generator.h"
#include "engine/model_io.h"
#include "gtest/gtest.h"
#include "serving/live_model.h"
#include "tbb/global_control.h"
#include "tests/test_util.h"
#include "training/train.h"

namespace recloop {
namespace {

class ReplayTest : public ::testing::Test {
 protected:
  static constexpr int32_t kUsers = 600, kNewUsers = 100;  // users past 500 are new

  // A planted store; the model trains on the first 80% of the known users' rows, and the rest
  // (with every row of the new users) is logged in the event store in time order.
  void SetUp() override {
    GeneratorOptions g;
    g.users = kUsers;
    g.items = 300;
    g.interactions = 30'000;
    g.clusters = 5;
    g.in_cluster = 0.9;
    g.feedback = FeedbackKind::kImplicit;
    g.seed = 11;
    ASSERT_OK_AND_ASSIGN(GeneratedStore store, GenerateStore(g));
    const Interactions& all = store.data;
    // Each known user's first 80% of rows (in time order) train the model.
    std::vector<int64_t> rows_of(kUsers, 0), seen_of(kUsers, 0);
    for (int64_t row = 0; row < all.size(); ++row) ++rows_of[all.user[row]];
    std::vector<int64_t> train_rows;
    std::vector<Event> logged;
    for (int64_t row = 0; row < all.size(); ++row) {
      const int32_t u = all.user[row];
      const bool new_user = u >= kUsers - kNewUsers;
      if (!new_user && ++seen_of[u] <= rows_of[u] * 8 / 10) {
        train_rows.push_back(row);
        continue;
      }
      logged.push_back({all.users.External(u), all.items.External(all.item[row]), "click",
                        std::nullopt, all.timestamp[row], ""});
    }
    std::stable_sort(logged.begin(), logged.end(),
                     [](const Event& a, const Event& b) { return a.timestamp < b.timestamp; });
    Interactions train = all.Subset(train_rows);
    train.Compact();
    ASSERT_OK_AND_ASSIGN(const FactorModel model, TrainModel(train, Training()));
    ASSERT_OK(SaveModel(model, dir_.File("good")).status());

    // The same recipe on a store whose taste is another seed's: it knows none of this one's.
    g.seed = 12;
    ASSERT_OK_AND_ASSIGN(GeneratedStore other, GenerateStore(g));
    ASSERT_OK_AND_ASSIGN(const FactorModel bad, TrainModel(other.data, Training()));
    ASSERT_OK(SaveModel(bad, dir_.File("bad")).status());

    ASSERT_OK_AND_ASSIGN(events_, EventStore::Open({dir_.File("events.db")}));
    ASSERT_OK(events_->Append(logged).status());
    logged_ = static_cast<int64_t>(logged.size());
  }

  static TrainOptions Training() {
    TrainOptions t;
    t.feedback = FeedbackKind::kImplicit;
    t.als.factors = 16;
    t.als.iterations = 8;
    return t;
  }

  std::shared_ptr<const ModelSnapshot> Snapshot(const std::string& name) {
    auto live = LiveModel::Open({dir_.File(name), ""});
    EXPECT_TRUE(live.ok()) << live.status();
    if (!live.ok()) return nullptr;
    lives_.push_back(*std::move(live));
    return lives_.back()->Get();
  }

  // One oneTBB thread for the whole test (set-up and replays): ThreadSanitizer cannot see
  // oneTBB's own synchronisation (libtbb is not instrumented), and Replay is deterministic
  // whatever the thread count.
  const tbb::global_control one_thread_{tbb::global_control::max_allowed_parallelism, 1};
  test::TempDir dir_;
  std::unique_ptr<EventStore> events_;
  std::vector<std::unique_ptr<LiveModel>> lives_;
  int64_t logged_ = 0;
};

TEST_F(ReplayTest, WithoutFoldInAndFiltersItEqualsEvalOnTheSameEvents) {
  const auto snap = Snapshot("good");
  ASSERT_NE(snap, nullptr);
  ReplayOptions o;
  o.fold_in = false;
  o.filters = false;
  ASSERT_OK_AND_ASSIGN(const ReplayResult r, Replay(*snap, *events_, o));
  EXPECT_EQ(r.events, logged_);
  EXPECT_EQ(r.folds, 0);
  EXPECT_GT(r.offline.users, 400);
  EXPECT_EQ(r.known.users, r.offline.users);
  EXPECT_NEAR(r.known.ndcg, r.offline.ndcg, 1e-9);
  EXPECT_NEAR(r.known.hit_rate, r.offline.hit_rate, 1e-9);
  EXPECT_NEAR(r.known.recall, r.offline.recall, 1e-9);
  EXPECT_NEAR(r.known.precision, r.offline.precision, 1e-9);
  // New customers are served too (the popular fallback), which eval leaves out.
  EXPECT_EQ(r.all.users, r.known.users + kNewUsers);
  EXPECT_GE(r.popular_lists, kNewUsers);
}

TEST_F(ReplayTest, FoldInAfterEachEventServesNewCustomersBetterThanPopularItems) {
  const auto snap = Snapshot("good");
  ASSERT_NE(snap, nullptr);
  ReplayOptions without;
  without.fold_in = false;
  ASSERT_OK_AND_ASSIGN(const ReplayResult a, Replay(*snap, *events_, without));
  ASSERT_OK_AND_ASSIGN(const ReplayResult b, Replay(*snap, *events_, ReplayOptions{}));
  // Every list that follows new events is ranked from a fold of them: all but a customer's
  // first (which follows some only when their first event was on an item the model lacks).
  EXPECT_LE(b.folds, b.lists);
  EXPECT_GE(b.folds, b.lists - b.all.users);
  EXPECT_GT(b.folds, b.all.users);
  // Only a new customer's first list is the popular fallback; after one event they are folded.
  EXPECT_EQ(b.popular_lists, kNewUsers);
  const double new_without = (a.all.ndcg * a.all.users - a.known.ndcg * a.known.users) / kNewUsers;
  const double new_with = (b.all.ndcg * b.all.users - b.known.ndcg * b.known.users) / kNewUsers;
  EXPECT_GT(new_with, 1.5 * new_without) << new_with << " vs " << new_without;
  EXPECT_GT(b.all.ndcg, a.all.ndcg);
}

TEST_F(ReplayTest, RanksAModelThatKnowsTheTasteAboveOneThatDoesNot) {
  const auto good = Snapshot("good"), bad = Snapshot("bad");
  ASSERT_NE(good, nullptr);
  ASSERT_NE(bad, nullptr);
  ASSERT_OK_AND_ASSIGN(const ReplayResult g, Replay(*good, *events_, ReplayOptions{}));
  ASSERT_OK_AND_ASSIGN(const ReplayResult b, Replay(*bad, *events_, ReplayOptions{}));
  EXPECT_GT(g.all.ndcg, b.all.ndcg + 0.05) << g.all.ndcg << " vs " << b.all.ndcg;
  EXPECT_GT(g.all.hit_rate, b.all.hit_rate);
}

TEST_F(ReplayTest, RefusesABadCutOff) {
  const auto snap = Snapshot("good");
  ASSERT_NE(snap, nullptr);
  ReplayOptions o;
  o.k = 0;
  EXPECT_EQ(Replay(*snap, *events_, o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace recloop
