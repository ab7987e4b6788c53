// The automatic choice of the ranking model (training/pipeline.h): which candidates it tries for
// a catalogue's size, and that its time budget stops it.
#include <map>
#include <string>
#include <vector>

#include "base/logger.h"
#include "data/generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "training/pipeline.h"

namespace recloop {
namespace {

std::vector<std::string> Names(const std::vector<SelectionCandidate>& c) {
  std::vector<std::string> out;
  for (const auto& s : c) out.push_back(s.name);
  return out;
}

TEST(SelectionCandidates, EaseOnlyWhereItStaysCheap) {
  const TrainOptions base;
  using ::testing::ElementsAre;
  // ML-100K and Steam shapes: both ease candidates.
  EXPECT_THAT(Names(SelectionCandidates(base, 943, 1682)),
              ElementsAre("als", "ease(100)", "ease(1000)"));
  EXPECT_THAT(Names(SelectionCandidates(base, 9418, 3598)),
              ElementsAre("als", "ease(100)", "ease(1000)"));
  // Past the item bound (a fit is O(items³)), or past the memory bound (dense histories of
  // 200K users x 5K items are 4 GB), als alone.
  EXPECT_THAT(Names(SelectionCandidates(base, 1000, kAutoEaseMaxItems + 1)), ElementsAre("als"));
  EXPECT_THAT(Names(SelectionCandidates(base, 200'000, 5000)), ElementsAre("als"));
  EXPECT_GT(EaseTrainingBytes(200'000, 5000), kAutoEaseMaxBytes);
  // A lower cap of the model's own applies too.
  TrainOptions capped;
  capped.ease.max_items = 1000;
  EXPECT_THAT(Names(SelectionCandidates(capped, 943, 1682)), ElementsAre("als"));
}

TEST(SelectRankingModel, ASpentBudgetStopsAfterTheFirstCandidate) {
  GeneratorOptions g;
  g.users = 600;
  g.items = 300;
  g.interactions = 12000;
  g.feedback = FeedbackKind::kImplicit;
  ASSERT_OK_AND_ASSIGN(const GeneratedStore store, GenerateStore(g));
  TrainOptions base;
  base.feedback = FeedbackKind::kImplicit;
  base.als.iterations = 2;
  CapturingLogger log;
  std::map<std::string, double> metrics;
  ASSERT_OK_AND_ASSIGN(const TrainOptions chosen,
                       SelectRankingModel(store.data, base, 10, 1, /*budget_seconds=*/0.0, &log,
                                          &metrics));
  EXPECT_EQ(chosen.algorithm, Algorithm::kAls);
  EXPECT_EQ(metrics.size(), 1u);
  EXPECT_TRUE(metrics.count("select/als/ndcg@10"));
  bool said = false;
  for (const std::string& line : log.lines()) said |= line.find("time budget") != std::string::npos;
  EXPECT_TRUE(said) << "the skipped candidates are logged";
  // With time, every candidate is tried and recorded.
  metrics.clear();
  ASSERT_OK(SelectRankingModel(store.data, base, 10, 1, 300.0, &log, &metrics).status());
  EXPECT_EQ(metrics.size(), 3u);
}

}  // namespace
}  // namespace recloop
