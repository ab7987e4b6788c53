// Tests for data/feedback_guess.h: the rule that tells ratings from counts, on hand-made values,
// on generated stores of both kinds, on a file, and on the shared data sets.
#include "data/feedback_guess.h"

#include <string>
#include <vector>

#include "data/generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

using ::testing::HasSubstr;

TEST(GuessFeedback, RatingScalesAreExplicit) {
  EXPECT_EQ(GuessFeedback({1, 2, 3, 4, 4, 5, 4, 3}).feedback, FeedbackKind::kExplicit);
  EXPECT_EQ(GuessFeedback({0.5f, 3.5f, 4.5f, 4.5f, 5}).feedback, FeedbackKind::kExplicit);
  EXPECT_EQ(GuessFeedback({1, 10, 7, 8, 8}).feedback, FeedbackKind::kExplicit);
  // Likes and dislikes as 1 and 0, mostly likes.
  EXPECT_EQ(GuessFeedback({0, 1, 1, 1}).feedback, FeedbackKind::kExplicit);
  // A tie is not a count's strict mode at its minimum (three ratings, one of each).
  EXPECT_EQ(GuessFeedback({3, 4, 5}).feedback, FeedbackKind::kExplicit);
}

TEST(GuessFeedback, CountsHoursAndUnitValuesAreImplicit) {
  // Counts whose most common value is the smallest, even on a small range.
  EXPECT_EQ(GuessFeedback({1, 1, 1, 2, 3, 1, 5}).feedback, FeedbackKind::kImplicit);
  // Hours: off the half-step grid, and past 10.
  const FeedbackGuess hours = GuessFeedback({4.5f, 0.1f, 273, 87});
  EXPECT_EQ(hours.feedback, FeedbackKind::kImplicit);
  EXPECT_THAT(hours.reason, HasSubstr("off a 0-10 rating scale"));
  EXPECT_EQ(GuessFeedback({1, 1, 1}).feedback, FeedbackKind::kImplicit);  // views without values
  EXPECT_EQ(GuessFeedback({}).feedback, FeedbackKind::kImplicit);
  EXPECT_EQ(GuessFeedback({-1, 2, 2}).feedback, FeedbackKind::kImplicit);  // negative: not a scale
}

TEST(GuessFeedback, GeneratedStoresOfEitherKind) {
  GeneratorOptions o;
  o.users = 500;
  o.items = 300;
  o.interactions = 10000;
  for (const FeedbackKind kind : {FeedbackKind::kExplicit, FeedbackKind::kImplicit}) {
    o.feedback = kind;
    ASSERT_OK_AND_ASSIGN(const GeneratedStore store, GenerateStore(o));
    EXPECT_EQ(GuessFeedback(store.data.value).feedback, kind) << ToString(kind);
  }
}

TEST(GuessFeedback, FileSampleAndItsErrors) {
  test::TempDir dir;
  const std::string ratings = dir.Write("r.tsv", "1\t1\t4\n1\t2\t5\n2\t1\t4\n2\t3\t1\n");
  ASSERT_OK_AND_ASSIGN(const FeedbackGuess r, GuessFileFeedback(ratings, ReadOptions()));
  EXPECT_EQ(r.feedback, FeedbackKind::kExplicit);
  EXPECT_THAT(r.reason, HasSubstr("most common 4"));
  // Only the first bytes are read: the huge value on the last line is past the sample.
  const std::string counts = dir.Write("c.csv", "user,item,value\na,b,1\na,c,1\nb,b,2\nc,d,900\n");
  ASSERT_OK_AND_ASSIGN(const FeedbackGuess c, GuessFileFeedback(counts, ReadOptions(), 30));
  EXPECT_EQ(c.feedback, FeedbackKind::kImplicit);
  EXPECT_THAT(c.reason, HasSubstr("values 1-2"));
  EXPECT_FALSE(GuessFileFeedback(dir.File("missing.csv"), ReadOptions()).ok());
  const std::string bad = dir.Write("bad.csv", "user,item,value\na,b,x\n");
  const absl::StatusOr<FeedbackGuess> error = GuessFileFeedback(bad, ReadOptions());
  ASSERT_FALSE(error.ok());
  EXPECT_THAT(std::string(error.status().message()), HasSubstr("bad.csv:2"));
}

TEST(GuessFeedback, SharedDataSets) {
  REQUIRE_ML100K(ml);
  ASSERT_OK_AND_ASSIGN(const FeedbackGuess ml_guess,
                       GuessFileFeedback(ml + "/u1.base", ReadOptions()));
  EXPECT_EQ(ml_guess.feedback, FeedbackKind::kExplicit) << ml_guess.reason;
  REQUIRE_STEAM(steam);
  ASSERT_OK_AND_ASSIGN(const FeedbackGuess steam_guess,
                       GuessFileFeedback(steam + "/plays.csv", ReadOptions()));
  EXPECT_EQ(steam_guess.feedback, FeedbackKind::kImplicit) << steam_guess.reason;
}

}  // namespace
}  // namespace recloop
