// The contract every model of the trainer registry (training/trainers.h) meets, run over each
// implementation through engine/model.h's Model interface alone: a new model adds one line to
// kCases (and to RegisterTrainers) and is held to the same tests.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "data/generator.h"
#include "data/split.h"
#include "engine/model.h"
#include "engine/model_registry.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "training/train.h"
#include "training/trainers.h"

namespace recloop {
namespace {

struct ContractCase {
  std::string label;      // the test's name suffix
  std::string algorithm;  // the registry name
  FeedbackKind feedback;
  // Sets one option out of range; the refusal must name `bad_option_name`.
  void (*set_bad_option)(TrainOptions*);
  const char* bad_option_name;
};

const ContractCase kCases[] = {
    {"AlsExplicit", "als", FeedbackKind::kExplicit, [](TrainOptions* o) { o->als.factors = 0; },
     "factors"},
    {"AlsImplicit", "als", FeedbackKind::kImplicit, [](TrainOptions* o) { o->als.alpha = -1.0f; },
     "alpha"},
    {"Bpmf", "bpmf", FeedbackKind::kExplicit, [](TrainOptions* o) { o->bpmf.samples = 0; },
     "samples"},
    {"Ease", "ease", FeedbackKind::kImplicit,
     [](TrainOptions* o) { o->ease.regularization = 0.0f; }, "regularization"},
    {"Popular", "popular", FeedbackKind::kImplicit,
     [](TrainOptions* o) { o->popularity.half_life_days = -1.0; }, "half_life_days"},
};

// Test names and failure messages show the case by its label.
void PrintTo(const ContractCase& c, std::ostream* os) { *os << c.label; }

// Small settings, so that every model fits in well under a second.
TrainOptions SmallOptions(const ContractCase& c) {
  TrainOptions o;
  o.algorithm = *ParseAlgorithm(c.algorithm);
  o.feedback = c.feedback;
  o.als.factors = 8;
  o.als.iterations = 8;
  o.bpmf.factors = 4;
  o.bpmf.burn_in = 10;
  o.bpmf.samples = 20;
  o.bpmf.served_samples = 4;
  return o;
}

// A generated store (planted clusters, power-law popularity) split per user.
struct Fixture {
  SplitResult split;
  CsrMatrix train_by_user;
  std::unique_ptr<Model> model;
  std::vector<double> steps;  // the loss (ALS) or training RMSE (BPMF) after every step
};

// One fitted model per case, shared by the tests of that case.
Fixture& Fitted(const ContractCase& c) {
  static auto* const cache = new std::map<std::string, std::unique_ptr<Fixture>>;
  std::unique_ptr<Fixture>& slot = (*cache)[c.label];
  if (slot != nullptr) return *slot;
  slot = std::make_unique<Fixture>();
  GeneratorOptions g;
  g.users = 300;
  g.items = 120;
  g.interactions = 9000;
  g.feedback = c.feedback;
  g.seed = 11;
  absl::StatusOr<GeneratedStore> store = GenerateStore(g);
  EXPECT_OK(store);
  EXPECT_OK(store->data.Deduplicate(DuplicatePolicy::kSum));
  SplitSpec spec;
  spec.kind = SplitSpec::Kind::kUser;
  spec.fraction = 0.2;
  absl::StatusOr<SplitResult> split = Split(store->data, spec, 5);
  EXPECT_OK(split);
  slot->split = std::move(*split);
  slot->train_by_user = slot->split.train.ToUserItemMatrix();
  TrainHooks run;
  run.on_iteration = [s = slot.get()](const IterationStats& st) { s->steps.push_back(st.loss); };
  run.on_sweep = [s = slot.get()](const BpmfSweepStats& st) {
    s->steps.push_back(st.train_rmse);
  };
  absl::StatusOr<std::unique_ptr<Model>> model = FitModel(slot->split.train, SmallOptions(c), run);
  EXPECT_OK(model);
  if (model.ok()) slot->model = std::move(*model);
  return *slot;
}

std::vector<float> ScoresOf(const Model& model, const UserState& user) {
  std::vector<float> scores(model.num_items());
  model.Score(user, scores);
  return scores;
}

// Folds training user u's own history.
absl::StatusOr<UserState> FoldTrainingUser(const Fixture& f, int32_t u) {
  return f.model->Fold(f.train_by_user.RowIndices(u), f.train_by_user.RowValues(u));
}

class ModelContract : public ::testing::TestWithParam<ContractCase> {
 protected:
  void SetUp() override {
    fixture_ = &Fitted(GetParam());
    ASSERT_NE(fixture_->model, nullptr);
  }
  const Model& model() const { return *fixture_->model; }

  Fixture* fixture_ = nullptr;
};

TEST_P(ModelContract, FitConvergesToFiniteOutput) {
  const FactorModel& data = model().data();
  EXPECT_EQ(model().name(), GetParam().algorithm);
  EXPECT_EQ(data.params.feedback, GetParam().feedback);
  EXPECT_EQ(model().num_users(), fixture_->split.train.users.size());
  EXPECT_EQ(model().num_items(), fixture_->split.train.items.size());
  EXPECT_TRUE(data.user_factors.allFinite());
  EXPECT_TRUE(data.item_factors.allFinite());
  EXPECT_TRUE(data.user_bias.allFinite());
  EXPECT_TRUE(data.item_bias.allFinite());
  EXPECT_TRUE(data.item_popularity.allFinite());
  EXPECT_EQ(data.seen.nnz(), fixture_->split.train.size());
  const std::vector<double>& steps = fixture_->steps;
  for (double s : steps) EXPECT_TRUE(std::isfinite(s));
  if (GetParam().algorithm == "als") {
    ASSERT_EQ(steps.size(), 8u);
    EXPECT_LT(steps.back(), steps.front());  // the objective fell
  }
}

TEST_P(ModelContract, ScoresHaveOneEntryPerItemAndSearchIsTheirTopK) {
  ASSERT_OK_AND_ASSIGN(const UserState user, FoldTrainingUser(*fixture_, 0));
  const std::vector<float> scores = ScoresOf(model(), user);
  ASSERT_EQ(static_cast<int32_t>(scores.size()), model().num_items());
  for (float s : scores) EXPECT_TRUE(std::isfinite(s));
  const auto seen = fixture_->train_by_user.RowIndices(0);
  const std::vector<ScoredItem> top = model().Search(user, 10, seen);
  EXPECT_EQ(top, TopK(scores, 10, seen));
  ASSERT_EQ(top.size(), 10u);
  for (const ScoredItem& s : top) EXPECT_FALSE(std::binary_search(seen.begin(), seen.end(), s.item));
}

// The AUC of user u's held-out items among the items they did not train on.
double HeldOutAuc(const std::vector<float>& scores, std::span<const int32_t> train_items,
                  const std::vector<int32_t>& held_out) {
  std::vector<uint8_t> role(scores.size(), 0);  // 0 negative, 1 held out, 2 trained on
  for (int32_t i : train_items) role[i] = 2;
  for (int32_t i : held_out) role[i] = 1;
  double wins = 0, pairs = 0;
  for (size_t p = 0; p < scores.size(); ++p) {
    if (role[p] != 1) continue;
    for (size_t n = 0; n < scores.size(); ++n) {
      if (role[n] != 0) continue;
      wins += scores[p] > scores[n] ? 1.0 : scores[p] == scores[n] ? 0.5 : 0.0;
      pairs += 1;
    }
  }
  return pairs > 0 ? wins / pairs : 0.5;
}

TEST_P(ModelContract, FoldedTrainingHistoryRanksHeldOutItemsAboveRandom) {
  const Interactions& train = fixture_->split.train;
  const Interactions& test = fixture_->split.test;
  std::vector<std::vector<int32_t>> held_out(train.users.size());
  for (int64_t r = 0; r < test.size(); ++r) {
    const auto u = train.users.Find(test.users.External(test.user[r]));
    const auto i = train.items.Find(test.items.External(test.item[r]));
    if (u && i) held_out[*u].push_back(*i);
  }
  double auc_sum = 0;
  int users = 0;
  for (int32_t u = 0; u < train.users.size(); ++u) {
    if (held_out[u].empty()) continue;
    ASSERT_OK_AND_ASSIGN(const UserState user, FoldTrainingUser(*fixture_, u));
    const std::vector<float> scores = ScoresOf(model(), user);
    if (GetParam().algorithm == "popular") {
      EXPECT_TRUE(user.cold_start);
      const Eigen::VectorXf& pop = model().data().item_popularity;
      ASSERT_EQ(scores, std::vector<float>(pop.data(), pop.data() + pop.size()));
    } else {
      EXPECT_FALSE(user.cold_start);
    }
    auc_sum += HeldOutAuc(scores, fixture_->train_by_user.RowIndices(u), held_out[u]);
    ++users;
  }
  ASSERT_GT(users, 100);
  EXPECT_GT(auc_sum / users, 0.55) << GetParam().label;
}

TEST_P(ModelContract, SaveThenLoadRoundTripsTheScoresExactly) {
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(const SavedModel saved, SaveModel(model(), dir.path().string()));
  ASSERT_OK_AND_ASSIGN(const std::unique_ptr<Model> loaded,
                       Trainers().Load(saved.path, TrainOptions{}, TrainHooks{}));
  EXPECT_EQ(loaded->name(), model().name());
  ASSERT_EQ(loaded->num_items(), model().num_items());
  for (int32_t u : {0, 1, 17}) {
    ASSERT_OK_AND_ASSIGN(const UserState a, FoldTrainingUser(*fixture_, u));
    ASSERT_OK_AND_ASSIGN(
        const UserState b,
        loaded->Fold(fixture_->train_by_user.RowIndices(u), fixture_->train_by_user.RowValues(u)));
    EXPECT_EQ(ScoresOf(model(), a), ScoresOf(*loaded, b)) << "user " << u;
  }
}

TEST_P(ModelContract, LineageSurvivesSaveAndLoad) {
  ModelLineage lineage;
  lineage.data.path = "generated";
  lineage.data.rows = fixture_->split.train.size();
  lineage.split = "user:0.2";
  lineage.train_interactions = fixture_->split.train.size();
  lineage.test_interactions = fixture_->split.test.size();
  lineage.metrics["ndcg@10"] = 0.25;
  lineage.parent_version = "v000007";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Model> model,
                       Trainers().Create(GetParam().algorithm, SmallOptions(GetParam()), {}));
  ASSERT_OK(model->Restore(fixture_->model->data()));
  model->set_lineage(lineage);
  test::TempDir dir;
  ASSERT_OK_AND_ASSIGN(const SavedModel saved, SaveModel(*model, dir.path().string()));
  ASSERT_OK_AND_ASSIGN(const std::unique_ptr<Model> loaded,
                       Trainers().Load(dir.path().string(), TrainOptions{}, TrainHooks{}));
  const ModelLineage& got = loaded->lineage();
  EXPECT_EQ(got.version, saved.version);
  EXPECT_EQ(got.data.path, "generated");
  EXPECT_EQ(got.data.rows, lineage.data.rows);
  EXPECT_EQ(got.split, "user:0.2");
  EXPECT_EQ(got.train_interactions, lineage.train_interactions);
  EXPECT_EQ(got.test_interactions, lineage.test_interactions);
  EXPECT_EQ(got.metrics, lineage.metrics);
  EXPECT_EQ(got.parent_version, "v000007");
  EXPECT_FALSE(got.library_version.empty());
}

TEST_P(ModelContract, BadOptionsAreRefusedNamingTheOption) {
  TrainOptions o = SmallOptions(GetParam());
  GetParam().set_bad_option(&o);
  const auto made = Trainers().Create(GetParam().algorithm, o, {});
  EXPECT_EQ(made.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find(GetParam().bad_option_name), std::string::npos)
      << made.status();
  const auto fitted = FitModel(fixture_->split.train, o);
  EXPECT_EQ(fitted.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(ModelContract, EmptyHistoryFoldsToColdStartScoredByPopularity) {
  ASSERT_OK_AND_ASSIGN(const UserState user, model().Fold({}, {}));
  EXPECT_TRUE(user.cold_start);
  const Eigen::VectorXf& pop = model().data().item_popularity;
  EXPECT_EQ(ScoresOf(model(), user), std::vector<float>(pop.data(), pop.data() + pop.size()));
}

TEST_P(ModelContract, BadHistoriesAndUnfittedModelsAreRefused) {
  const int32_t out_of_range[] = {model().num_items()};
  const float one[] = {1.0f};
  EXPECT_EQ(model().Fold(out_of_range, one).status().code(), absl::StatusCode::kInvalidArgument);
  const int32_t item[] = {0};
  EXPECT_EQ(model().Fold(item, {}).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Model> fresh,
                       Trainers().Create(GetParam().algorithm, SmallOptions(GetParam()), {}));
  EXPECT_EQ(fresh->Fold(item, one).status().code(), absl::StatusCode::kFailedPrecondition);
  // Another algorithm's data is not adopted.
  FactorModel other = model().data();
  other.params.algorithm = GetParam().algorithm == "popular" ? Algorithm::kAls : Algorithm::kPopular;
  EXPECT_EQ(fresh->Restore(std::move(other)).code(), absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(EveryTrainer, ModelContract, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.label; });

TEST(ModelRegistry, NamesEveryTrainerAndRefusesUnknownAndDuplicateNames) {
  EXPECT_EQ(Trainers().Names(), (std::vector<std::string>{"als", "bpmf", "ease", "popular"}));
  const auto unknown = Trainers().Create("nope", TrainOptions{}, TrainHooks{});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("als, bpmf, ease, popular"), std::string::npos);
  TrainerRegistry registry;
  ASSERT_OK(RegisterTrainers(&registry));
  EXPECT_EQ(RegisterTrainers(&registry).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace recloop
