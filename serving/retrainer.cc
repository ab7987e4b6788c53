#include "serving/retrainer.h"

#include <chrono>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/thread_priority.h"
#include "base/timer.h"
#include "data/event_interactions.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"
#include "tbb/task_arena.h"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;

std::string RefusedDir(const std::string& models_dir) { return models_dir + "/refused"; }

NewItemIndexerOptions IndexerOptions(const RetrainerOptions& options) {
  NewItemIndexerOptions o;
  o.min_events = options.new_item_min_events;
  o.build_threads = std::max(1, options.threads);
  return o;
}

}  // namespace

Retrainer::Retrainer(LiveModel* live, EventStore* events, FeedbackFolder* folder,
                     RetrainerOptions options, Metrics* metrics, Logger* log)
    : live_(live),
      events_(events),
      folder_(folder),
      options_(std::move(options)),
      own_metrics_(metrics == nullptr ? std::make_unique<Metrics>() : nullptr),
      metrics_(metrics == nullptr ? own_metrics_.get() : metrics),
      log_(log),
      swapper_(live, events, folder),
      new_items_(live, &swapper_, folder->feedback(), IndexerOptions(options_), metrics_, log) {
  // Events stored before this process started and not yet in the live model count as pending.
  if (const auto snap = live_->Get(); snap != nullptr) {
    if (auto last = events_->LastSeq(); last.ok()) {
      pending_events_ = std::max<int64_t>(0, *last - EventsThroughSeq(*snap->model, *events_));
    }
  }
  metrics_->SetRetrainState(false, pending_events_);
  thread_ = std::thread([this] { Loop(); });
}

Retrainer::~Retrainer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Retrainer::NoteEvents(std::span<const Event> events) {
  if (events.empty()) return;
  bool due = new_items_.Note(events);
  {
    // Taken even when only an item became due, so that the wake-up below is not lost.
    std::lock_guard<std::mutex> lock(mu_);
    pending_events_ += static_cast<int64_t>(events.size());
    due = due || (options_.every_events > 0 && pending_events_ >= options_.every_events);
    metrics_->SetRetrainState(running_.load(), pending_events_);
  }
  if (due) cv_.notify_all();
}

absl::StatusOr<std::optional<RetrainOutcome>> Retrainer::RetrainNow(bool wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (running_.load() || requested_) {
    return absl::AlreadyExistsError("a retrain is already running");
  }
  requested_ = true;
  const uint64_t target = runs_started_ + 1;
  cv_.notify_all();
  if (!wait) return std::nullopt;
  done_cv_.wait(lock, [&] { return runs_finished_ >= target || stop_; });
  if (runs_finished_ < target) return absl::CancelledError("the server is stopping");
  return last_;
}

std::optional<RetrainOutcome> Retrainer::Last() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

void Retrainer::Loop() {
  // This thread (and threads it starts, which inherit it) runs at low priority.
  SetThisThreadNice(options_.nice);
  std::unique_lock<std::mutex> lock(mu_);
  auto last_run = Clock::now();
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::ratio<60>>(options_.every_minutes));
  auto retrain_due = [&] {
    return requested_ || (options_.every_events > 0 && pending_events_ >= options_.every_events) ||
           (options_.every_minutes > 0 && pending_events_ > 0 && Clock::now() - last_run >= period);
  };
  while (true) {
    auto due = [&] { return stop_ || retrain_due() || new_items_.has_due(); };
    if (options_.every_minutes > 0) {
      cv_.wait_until(lock, last_run + period, due);
    } else {
      cv_.wait(lock, due);
    }
    if (stop_) break;
    if (!due()) continue;
    if (!retrain_due()) {  // new items only
      lock.unlock();
      new_items_.IndexDue();
      lock.lock();
      continue;
    }
    requested_ = false;
    pending_events_ = 0;
    ++runs_started_;
    running_ = true;
    metrics_->SetRetrainState(true, pending_events_);
    lock.unlock();
    RetrainOutcome outcome = RunOnce();
    lock.lock();
    running_ = false;
    metrics_->SetRetrainState(false, pending_events_);
    Metrics::RetrainRun run;
    run.outcome = outcome.outcome;
    run.seconds = outcome.seconds;
    if (!outcome.gate.metric.empty() && !outcome.gate.skipped) {
      run.gate_metric = outcome.gate.metric;
      run.gate_candidate = outcome.gate.candidate;
      run.gate_live = outcome.gate.live;
    }
    metrics_->CountRetrain(run);
    last_ = std::move(outcome);
    ++runs_finished_;
    last_run = Clock::now();
    done_cv_.notify_all();
  }
  done_cv_.notify_all();
}

void Retrainer::Finish(RetrainOutcome& o, std::string outcome, std::string message,
                       SteadyClock::time_point start) const {
  o.outcome = std::move(outcome);
  o.message = std::move(message);
  o.seconds = SecondsSince(start);
  o.finished_utc = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  log_->Info("retrain %s%s%s (%.1f s): %s", o.outcome, o.version.empty() ? "" : " ", o.version,
             o.seconds, o.message);
}

RetrainOutcome Retrainer::RunOnce() {
  const auto start = SteadyClock::now();
  RetrainOutcome o;
  auto snap = live_->Get();
  if (snap == nullptr) {
    Finish(o, "failed", "no model is loaded", start);
    return o;
  }
  // One retrain at a time across the replicas of a shared store (an advisory lock), from the
  // version the models directory serves now.
  absl::StatusOr<std::unique_ptr<StoreLock>> held = events_->TryLock("retrain");
  if (!held.ok()) {
    Finish(o, "failed", std::string(held.status().message()), start);
    return o;
  }
  if (*held == nullptr) {
    Finish(o, "skipped", "another replica is retraining", start);
    return o;
  }
  if (events_->shared()) {
    FollowCurrent();
    snap = live_->Get();
  }
  o.parent_version = snap->version();
  const FactorModel& live = *snap->model;

  RetrainOptions r = options_.gate;
  r.train = TrainOptionsFor(live, options_.iterations);
  if (options_.regularization >= 0) r.train.als.regularization = options_.regularization;
  r.type_weights = folder_->feedback().type_weights;
  tbb::task_arena arena(std::max(1, options_.threads));
  absl::StatusOr<RetrainResult> result = absl::UnknownError("not run");
  arena.execute([&] { result = Retrain(*events_, &live, r); });
  if (!result.ok()) {
    Finish(o, absl::IsFailedPrecondition(result.status()) ? "skipped" : "failed",
           std::string(result.status().message()), start);
    return o;
  }
  o.gate = {result->gate.metric, result->gate.candidate, result->gate.live, result->gate.skipped,
            result->gate.passed};
  o.new_events = result->new_events;
  o = SaveAndSwap(*snap, *std::move(result), std::move(o));
  Finish(o, o.outcome, o.message, start);
  return o;
}

// Fills o.outcome, o.message and o.version (Finish logs them).
RetrainOutcome Retrainer::SaveAndSwap(const ModelSnapshot& parent, RetrainResult result,
                                      RetrainOutcome o) {
  auto done = [&o](std::string outcome, std::string message) {
    o.outcome = std::move(outcome);
    o.message = std::move(message);
    return std::move(o);
  };
  SaveModelOptions save;
  save.make_current = result.gate.passed;
  // The parent's rating head carries over (already loaded in its snapshot): a retrain from
  // events changes the ranking model, and predicted_rating must survive the swap.
  save.rating_head = parent.rating_head.get();
  if (result.model.has_factors()) {
    const FactorModel& model = result.model;
    const ItemIndexOptions index_options = IndexOptionsLike(parent, options_.threads);
    save.write_extra_files = [&model, index_options](const std::string& dir) -> absl::Status {
      ASSIGN_OR_RETURN(ItemIndex index, ItemIndex::Build(model, index_options));
      return index.Save(dir + "/" + kItemIndexFileName);
    };
  }
  const std::string& models_dir = live_->models_dir();
  auto swap_lock = swapper_.Lock();
  if (const auto now = live_->Get(); now == nullptr || now->version() != o.parent_version) {
    return done("discarded", absl::StrCat("the live model changed during the retrain (from ",
                                          o.parent_version, ")"));
  }
  if (!result.gate.passed) {
    auto saved = SaveModel(result.model, RefusedDir(models_dir), save);
    if (saved.ok()) o.version = "refused/" + saved->version;
    PruneVersions(RefusedDir(models_dir), options_.keep_versions).IgnoreError();
    return done("refused", absl::StrCat("the gate refused the candidate: ", result.gate.reason,
                                        saved.ok() ? "" : "; not kept: ",
                                        saved.ok() ? "" : saved.status().message()));
  }
  auto saved = SaveModel(result.model, models_dir, save);
  if (!saved.ok()) return done("failed", std::string(saved.status().message()));
  o.version = saved->version;
  if (absl::Status s = swapper_.SwapInLocked(saved->path); !s.ok()) {
    // Keep serving the parent, and point `current` back at it for the next start.
    SetCurrentVersion(models_dir, o.parent_version).IgnoreError();
    return done("failed", absl::StrCat("could not swap ", saved->version, " in: ", s.message()));
  }
  if (auto pruned = PruneVersions(models_dir, options_.keep_versions); !pruned.ok()) {
    log_->Warning("pruning old versions: %s", std::string(pruned.status().message()));
  }
  return done("promoted", result.gate.reason);
}

void Retrainer::FollowCurrent() {
  const std::string& models_dir = live_->models_dir();
  std::error_code ec;
  const std::filesystem::path target =
      std::filesystem::read_symlink(std::filesystem::path(models_dir) / "current", ec);
  if (ec) return;
  const std::string version = target.filename().string();
  if (const auto snap = live_->Get(); snap != nullptr && snap->version() == version) return;
  auto swap_lock = swapper_.Lock();
  // Again under the lock: this server's own promotion or rollback may have just swapped it in.
  if (const auto snap = live_->Get(); snap != nullptr && snap->version() == version) return;
  if (version == unfollowable_) return;
  if (absl::Status s = swapper_.SwapInLocked(models_dir + "/" + version); !s.ok()) {
    unfollowable_ = version;
    log_->Error("the models directory's current version %s cannot be swapped in: %s", version,
                s.ToString());
    return;
  }
  log_->Info(
      "swapped in %s, the models directory's current version (promoted or rolled back "
      "by another replica)",
      version);
}

absl::StatusOr<std::string> Retrainer::Rollback() {
  auto swap_lock = swapper_.Lock();
  const auto snap = live_->Get();
  if (snap == nullptr) return absl::FailedPreconditionError("no model is loaded");
  const std::string& models_dir = live_->models_dir();
  ASSIGN_OR_RETURN(const std::vector<std::string> versions, ListVersions(models_dir));
  std::string previous;
  for (const std::string& v : versions) {
    if (v < snap->version()) previous = v;  // names sort in creation order
  }
  if (previous.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no version before ", snap->version(), " to roll back to"));
  }
  RETURN_IF_ERROR(swapper_.SwapInLocked(models_dir + "/" + previous));
  RETURN_IF_ERROR(SetCurrentVersion(models_dir, previous));
  metrics_->CountRollback();
  log_->Info("rolled back from %s to %s", snap->version(), previous);
  return previous;
}

absl::Status Retrainer::Promote(const std::string& version) {
  auto swap_lock = swapper_.Lock();
  const std::string& models_dir = live_->models_dir();
  RETURN_IF_ERROR(swapper_.SwapInLocked(models_dir + "/" + version));
  RETURN_IF_ERROR(SetCurrentVersion(models_dir, version));
  log_->Info("promoted %s (online gate)", version);
  return absl::OkStatus();
}

}  // namespace recloop
