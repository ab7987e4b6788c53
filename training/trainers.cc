#include "training/trainers.h"

#include <memory>
#include <numeric>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace recloop {
namespace {

// Refuses a model of another algorithm (Restore).
absl::Status CheckAlgorithm(const FactorModel& data, Algorithm expected) {
  if (data.params.algorithm == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("a ", std::string(ToString(data.params.algorithm)),
                                                 " model is not a ",
                                                 std::string(ToString(expected)), " model"));
}

// The rows of `from` for the users and items of `data` that it knows.
AlsWarmStart WarmStartFrom(const FactorModel& from, const TrainingData& data, FeedbackKind feedback) {
  const int k = from.params.factors;
  AlsWarmStart w;
  w.user_factors.setZero(data.users.size(), k);
  w.user_known.assign(data.users.size(), 0);
  for (int32_t u = 0; u < data.users.size(); ++u) {
    if (const auto r = from.users.Find(data.users.External(u)); r) {
      w.user_factors.row(u) = from.user_factors.row(*r);
      w.user_known[u] = 1;
    }
  }
  w.item_factors.setZero(data.items.size(), k);
  w.item_known.assign(data.items.size(), 0);
  if (feedback == FeedbackKind::kExplicit) w.item_bias.setZero(data.items.size());
  for (int32_t i = 0; i < data.items.size(); ++i) {
    if (const auto r = from.items.Find(data.items.External(i)); r) {
      w.item_factors.row(i) = from.item_factors.row(*r);
      if (feedback == FeedbackKind::kExplicit) w.item_bias[i] = from.item_bias[*r];
      w.item_known[i] = 1;
    }
  }
  return w;
}

// What every trainer's model shares: its algorithm (its name, and the data it restores), its
// options and its run.
template <Algorithm kAlgorithm, typename Options>
class TrainedModel : public FactorModelBase {
 public:
  TrainedModel(const Options& options, const TrainHooks& run) : options_(options), run_(run) {}

  std::string_view name() const override { return ToString(kAlgorithm); }

 protected:
  absl::Status CheckRestore(const FactorModel& data) const override {
    return CheckAlgorithm(data, kAlgorithm);
  }

  const Options options_;
  const TrainHooks run_;
};

// ALS, explicit or implicit (training/als.h).
class AlsModel final : public TrainedModel<Algorithm::kAls, AlsOptions> {
 public:
  using TrainedModel::TrainedModel;

 protected:
  absl::Status FitChecked(TrainingData data) override {
    // Rows start from factors seeded by their external IDs, so that the distributed trainer
    // (which numbers IDs differently) starts from the same point.
    AlsRowKeys keys;
    keys.users.resize(data.users.size());
    keys.items.resize(data.items.size());
    for (int32_t u = 0; u < data.users.size(); ++u) {
      keys.users[u] = AlsRowKey(data.users.External(u));
    }
    for (int32_t i = 0; i < data.items.size(); ++i) {
      keys.items[i] = AlsRowKey(data.items.External(i));
    }
    std::optional<AlsWarmStart> warm;
    if (const FactorModel* w = run_.warm_start;
        w != nullptr && w->has_factors() && w->params.factors == options_.factors &&
        w->params.feedback == options_.feedback) {
      warm = WarmStartFrom(*w, data, options_.feedback);
    }
    const AlsRun run{run_.on_iteration, warm ? &*warm : nullptr, &keys};
    ASSIGN_OR_RETURN(AlsResult result, TrainAls(data.by_user, data.by_item, options_, run));
    return Adopt(std::move(result.model), std::move(data));
  }
};

// BPMF (training/bpmf.h): explicit ratings only.
class BpmfModel final : public TrainedModel<Algorithm::kBpmf, BpmfOptions> {
 public:
  using TrainedModel::TrainedModel;

 protected:
  absl::Status FitChecked(TrainingData data) override {
    std::optional<BpmfProbe> probe;
    if (run_.probe != nullptr) {
      const Interactions& t = *run_.probe;
      probe.emplace();
      for (int64_t r = 0; r < t.size(); ++r) {
        probe->user.push_back(data.users.Find(t.users.External(t.user[r])).value_or(-1));
        probe->item.push_back(data.items.Find(t.items.External(t.item[r])).value_or(-1));
        probe->value.push_back(t.value[r]);
      }
    }
    const BpmfRun run{run_.on_sweep, probe ? &*probe : nullptr};
    ASSIGN_OR_RETURN(BpmfResult result, TrainBpmf(data.by_user, data.by_item, options_, run));
    if (run_.bpmf_report != nullptr) *run_.bpmf_report = result.report;
    return Adopt(std::move(result.model), std::move(data));
  }
};

// Most popular: every user is scored by item popularity (no factors, so every fold is a cold
// start).
class PopularModel final : public TrainedModel<Algorithm::kPopular, FeedbackKind> {
 public:
  using TrainedModel::TrainedModel;

 protected:
  absl::Status FitChecked(TrainingData data) override {
    const std::vector<float>& values = data.by_user.values();
    FactorModel m;
    m.params.algorithm = Algorithm::kPopular;
    m.params.feedback = options_;
    m.global_mean = static_cast<float>(std::accumulate(values.begin(), values.end(), 0.0) /
                                       static_cast<double>(values.size()));
    return Adopt(std::move(m), std::move(data));
  }
};

// EASE (training/ease.h): implicit preferences (ratings as preferences, counts, events).
class EaseModel final : public TrainedModel<Algorithm::kEase, EaseOptions> {
 public:
  using TrainedModel::TrainedModel;

 protected:
  absl::Status FitChecked(TrainingData data) override {
    ASSIGN_OR_RETURN(FactorModel m, TrainEase(data.by_user, data.by_item, options_));
    return Adopt(std::move(m), std::move(data));
  }
};

absl::StatusOr<std::unique_ptr<Model>> MakeEase(const TrainOptions& o, const TrainHooks& run) {
  // Any feedback: EASE reads the sign of each value (ratings as such are all liked; `train`
  // gives it ratings as preferences). Its model is always implicit.
  RETURN_IF_ERROR(ValidateEaseOptions(o.ease));
  RETURN_IF_ERROR(ValidatePopularityOptions(o.popularity));
  return std::make_unique<EaseModel>(o.ease, run);
}

absl::StatusOr<std::unique_ptr<Model>> MakeAls(const TrainOptions& o, const TrainHooks& run) {
  AlsOptions als = o.als;
  als.feedback = o.feedback;
  RETURN_IF_ERROR(ValidateAlsOptions(als));
  RETURN_IF_ERROR(ValidatePopularityOptions(o.popularity));
  return std::make_unique<AlsModel>(als, run);
}

absl::StatusOr<std::unique_ptr<Model>> MakeBpmf(const TrainOptions& o, const TrainHooks& run) {
  if (o.feedback != FeedbackKind::kExplicit) {
    return absl::InvalidArgumentError("bpmf models explicit ratings: use als for implicit feedback");
  }
  RETURN_IF_ERROR(ValidateBpmfOptions(o.bpmf));
  RETURN_IF_ERROR(ValidatePopularityOptions(o.popularity));
  return std::make_unique<BpmfModel>(o.bpmf, run);
}

absl::StatusOr<std::unique_ptr<Model>> MakePopular(const TrainOptions& o,
                                                    const TrainHooks& run) {
  RETURN_IF_ERROR(ValidatePopularityOptions(o.popularity));
  return std::make_unique<PopularModel>(o.feedback, run);
}

}  // namespace

absl::Status RegisterTrainers(TrainerRegistry* registry) {
  RETURN_IF_ERROR(registry->Register("als", MakeAls));
  RETURN_IF_ERROR(registry->Register("bpmf", MakeBpmf));
  RETURN_IF_ERROR(registry->Register("ease", MakeEase));
  return registry->Register("popular", MakePopular);
}

const TrainerRegistry& Trainers() {
  // Leaked on purpose: no global object with a destructor (STYLE.md).
  static const TrainerRegistry* const registry = [] {
    auto* r = new TrainerRegistry;
    // The names are distinct, so this cannot fail.
    (void)RegisterTrainers(r);
    return r;
  }();
  return *registry;
}

absl::StatusOr<TrainingData> MakeTrainingData(const Interactions& train,
                                              const PopularityOptions& popularity) {
  TrainingData data;
  ASSIGN_OR_RETURN(data.item_popularity, ItemPopularity(train, popularity));
  data.popularity_half_life_days = popularity.half_life_days;
  data.users = train.users;
  data.items = train.items;
  data.by_user = train.ToUserItemMatrix();
  data.by_item = data.by_user.Transpose();
  return data;
}

}  // namespace recloop
