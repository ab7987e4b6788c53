// The retrain gate ranks (issue 20): a candidate is judged by the NDCG of the list it would
// serve, whatever its kind; a better RMSE never buys a worse ranking a promotion.
#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "training/evaluate.h"
#include "training/retrain.h"

namespace recloop {
namespace {

EvalResult Eval(double ndcg, double rmse) {
  EvalResult r;
  r.ndcg = ndcg;
  r.rmse = rmse;
  return r;
}

TEST(RetrainGateTest, RefusesBetterRmseButWorseNdcg) {
  GateResult gate;
  JudgeGate(/*candidate=*/Eval(0.30, 0.85), /*live=*/Eval(0.40, 0.95), 0.01, &gate);
  EXPECT_FALSE(gate.passed);
  EXPECT_TRUE(gate.higher_is_better);
  EXPECT_DOUBLE_EQ(gate.candidate, 0.30);
  EXPECT_DOUBLE_EQ(gate.live, 0.40);
}

TEST(RetrainGateTest, PassesBetterNdcgDespiteWorseRmse) {
  GateResult gate;
  JudgeGate(Eval(0.45, 1.10), Eval(0.40, 0.90), 0.01, &gate);
  EXPECT_TRUE(gate.passed);
}

TEST(RetrainGateTest, ToleranceIsRelative) {
  GateResult gate;
  JudgeGate(Eval(0.396, 1.0), Eval(0.40, 1.0), 0.01, &gate);  // 1% worse: passes
  EXPECT_TRUE(gate.passed);
  JudgeGate(Eval(0.395, 1.0), Eval(0.40, 1.0), 0.01, &gate);  // 1.25% worse: refused
  EXPECT_FALSE(gate.passed);
}

TEST(RetrainGateTest, NonFiniteCandidateFails) {
  GateResult gate;
  JudgeGate(Eval(std::numeric_limits<double>::quiet_NaN(), 0.9), Eval(0.0, 0.9), 0.01, &gate);
  EXPECT_FALSE(gate.passed);
}

}  // namespace
}  // namespace recloop
