#include "serving/retrainer.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "data/event_interactions.h"
#include "engine/fold_in.h"
#include "engine/item_index.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"
#include "tbb/task_arena.h"

namespace recloop {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kOutcomes[] = {"promoted", "refused", "skipped", "discarded", "failed"};

std::string RefusedDir(const std::string& models_dir) { return models_dir + "/refused"; }

}  // namespace

Retrainer::Retrainer(LiveModel* live, EventStore* events, UserOverlay* overlay,
                     FeedbackOptions feedback, RetrainerOptions options)
    : live_(live),
      events_(events),
      overlay_(overlay),
      feedback_(std::move(feedback)),
      options_(std::move(options)) {
  // Events stored before this process started and not yet in the live model count as pending.
  if (const auto snap = live_->Get(); snap != nullptr) {
    if (auto last = events_->LastSeq(); last.ok()) {
      pending_events_ = std::max<int64_t>(0, *last - EventsThroughSeq(*snap->model, *events_));
    }
  }
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
  // Events of items the live model does not know, from users it knows (looked up before
  // taking the lock: this runs on every POST).
  std::vector<std::pair<const Event*, float>> unknown_items;
  if (const auto snap = live_->Get();
      options_.new_item_min_events > 0 && snap != nullptr && snap->model->has_factors()) {
    const FactorModel& m = *snap->model;
    for (const Event& e : events) {
      if (m.items.Find(e.item).has_value()) continue;
      const auto value = EventValue(e, m.params.feedback, feedback_.type_weights);
      if (value && m.users.Find(e.user).has_value()) unknown_items.emplace_back(&e, *value);
    }
  }
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_events_ += static_cast<int64_t>(events.size());
    due = options_.every_events > 0 && pending_events_ >= options_.every_events;
    for (const auto& [event, value] : unknown_items) {
      const Event& e = *event;
      // Bounded memory: at most 10,000 items tracked, 1,000 events each.
      auto it = new_item_events_.find(e.item);
      if (it == new_item_events_.end()) {
        if (new_item_events_.size() >= 10'000) continue;
        it = new_item_events_.emplace(e.item, std::vector<std::pair<std::string, float>>()).first;
      }
      if (it->second.size() < 1000) it->second.emplace_back(e.user, value);
      if (static_cast<int>(it->second.size()) >= options_.new_item_min_events &&
          due_items_.insert(e.item).second) {
        due = true;
      }
    }
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
  if (options_.nice > 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), options_.nice);
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto last_run = Clock::now();
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::ratio<60>>(options_.every_minutes));
  while (true) {
    auto due = [&] {
      return stop_ || requested_ || !due_items_.empty() ||
             (options_.every_events > 0 && pending_events_ >= options_.every_events) ||
             (options_.every_minutes > 0 && pending_events_ > 0 &&
              Clock::now() - last_run >= period);
    };
    if (options_.every_minutes > 0) {
      cv_.wait_until(lock, last_run + period, due);
    } else {
      cv_.wait(lock, due);
    }
    if (stop_) break;
    if (!due()) continue;
    const bool retrain_due =
        requested_ || (options_.every_events > 0 && pending_events_ >= options_.every_events) ||
        (options_.every_minutes > 0 && pending_events_ > 0 && Clock::now() - last_run >= period);
    if (!retrain_due) {  // new items only
      std::map<std::string, std::vector<std::pair<std::string, float>>> items;
      for (const std::string& item : due_items_) {
        items[item] = std::move(new_item_events_[item]);
        new_item_events_.erase(item);
      }
      due_items_.clear();
      lock.unlock();
      AddNewItems(std::move(items));
      lock.lock();
      continue;
    }
    requested_ = false;
    pending_events_ = 0;
    ++runs_started_;
    running_ = true;
    lock.unlock();
    RetrainOutcome outcome = RunOnce();
    lock.lock();
    running_ = false;
    ++outcomes_[outcome.outcome];
    last_ = std::move(outcome);
    ++runs_finished_;
    last_run = Clock::now();
    done_cv_.notify_all();
  }
  done_cv_.notify_all();
}

RetrainOutcome Retrainer::RunOnce() {
  const auto start = Clock::now();
  RetrainOutcome o;
  auto finish = [&](std::string outcome, std::string message) {
    o.outcome = std::move(outcome);
    o.message = std::move(message);
    o.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    o.finished_utc = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
    std::fprintf(stderr, "recloop serve: retrain %s%s%s (%.1f s): %s\n", o.outcome.c_str(),
                 o.version.empty() ? "" : " ", o.version.c_str(), o.seconds, o.message.c_str());
    return o;
  };
  const auto snap = live_->Get();
  if (snap == nullptr) return finish("failed", "no model is loaded");
  o.parent_version = snap->version();
  const FactorModel& live = *snap->model;

  RetrainOptions r = options_.gate;
  r.train = TrainOptionsFor(live, options_.iterations);
  if (options_.regularization >= 0) r.train.als.regularization = options_.regularization;
  r.type_weights = feedback_.type_weights;
  tbb::task_arena arena(std::max(1, options_.threads));
  absl::StatusOr<RetrainResult> result = absl::UnknownError("not run");
  arena.execute([&] { result = Retrain(*events_, &live, r); });
  if (!result.ok()) {
    if (absl::IsFailedPrecondition(result.status())) {
      return finish("skipped", std::string(result.status().message()));
    }
    return finish("failed", std::string(result.status().message()));
  }
  o.gate = result->gate;
  o.new_events = result->new_events;

  SaveModelOptions save;
  save.make_current = result->gate.passed;
  if (result->model.has_factors()) {
    ItemIndexOptions index_options;
    index_options.type = snap->index != nullptr ? snap->index->type() : IndexType::kAuto;
    if (snap->index != nullptr && snap->index->type() == IndexType::kHnsw) {
      index_options.hnsw_ef_search = snap->index->default_ef_search();
    }
    index_options.build_threads = std::max(1, options_.threads);
    const FactorModel& model = result->model;
    save.write_extra_files = [&model, index_options](const std::string& dir) -> absl::Status {
      ASSIGN_OR_RETURN(ItemIndex index, ItemIndex::Build(model, index_options));
      return index.Save(dir + "/" + kItemIndexFileName);
    };
  }
  const std::string& models_dir = live_->models_dir();
  std::lock_guard<std::mutex> swap_lock(swap_mu_);
  if (const auto now = live_->Get(); now == nullptr || now->version() != o.parent_version) {
    return finish("discarded", absl::StrCat("the live model changed during the retrain (from ",
                                            o.parent_version, ")"));
  }
  if (!result->gate.passed) {
    auto saved = SaveModel(result->model, RefusedDir(models_dir), save);
    if (saved.ok()) o.version = "refused/" + saved->version;
    PruneVersions(RefusedDir(models_dir), options_.keep_versions).IgnoreError();
    return finish("refused", absl::StrCat("the gate refused the candidate: ", result->gate.reason,
                                          saved.ok() ? "" : "; not kept: ",
                                          saved.ok() ? "" : saved.status().message()));
  }
  auto saved = SaveModel(result->model, models_dir, save);
  if (!saved.ok()) return finish("failed", std::string(saved.status().message()));
  o.version = saved->version;
  if (absl::Status s = SwapInLocked(saved->path); !s.ok()) {
    // Keep serving the parent, and point `current` back at it for the next start.
    SetCurrentVersion(models_dir, o.parent_version).IgnoreError();
    return finish("failed", absl::StrCat("could not swap ", saved->version, " in: ", s.message()));
  }
  if (auto pruned = PruneVersions(models_dir, options_.keep_versions); !pruned.ok()) {
    std::fprintf(stderr, "recloop serve: pruning old versions: %s\n",
                 std::string(pruned.status().message()).c_str());
  }
  return finish("promoted", result->gate.reason);
}

absl::StatusOr<int64_t> Retrainer::RestoreFolds() {
  std::lock_guard<std::mutex> swap_lock(swap_mu_);
  const auto snap = live_->Get();
  if (snap == nullptr || snap->fold_in == nullptr) return 0;
  int64_t users = 0;
  RETURN_IF_ERROR(
      RefoldAfter(*snap, EventsThroughSeq(*snap->model, *events_), &users).status());
  return users;
}

absl::StatusOr<int64_t> Retrainer::RefoldAfter(const ModelSnapshot& snap, int64_t after_seq,
                                               int64_t* folded) {
  const int64_t through = EventsThroughSeq(*snap.model, *events_);
  std::set<std::string> users;
  int64_t last = after_seq;
  RETURN_IF_ERROR(events_->ForEach(after_seq, [&](const StoredEvent& e) {
    users.insert(e.event.user);
    last = e.seq;
    return true;
  }));
  ASSIGN_OR_RETURN(const auto erasures, events_->Erasures(through));
  for (const auto& [user, seq] : erasures) users.insert(user);
  RETURN_IF_ERROR(RefoldUsers(snap, users));
  if (folded != nullptr) *folded = static_cast<int64_t>(users.size());
  return last;
}

absl::Status Retrainer::RefoldUsers(const ModelSnapshot& snap,
                                    const std::set<std::string>& users) {
  const int64_t through = EventsThroughSeq(*snap.model, *events_);
  for (const std::string& user : users) {
    std::shared_lock<std::shared_mutex> no_erasure(overlay_->erasure_mutex());
    ASSIGN_OR_RETURN(const auto history, events_->UserEvents(user, 0, through));
    ASSIGN_OR_RETURN(const int64_t erased_at, events_->ErasedAt(user));
    ASSIGN_OR_RETURN(auto entry,
                     FoldUser(snap, user, history, feedback_, through, erased_at >= through));
    overlay_->Put(user, std::move(entry));
  }
  return absl::OkStatus();
}

void Retrainer::AddNewItems(
    std::map<std::string, std::vector<std::pair<std::string, float>>> items) {
  std::lock_guard<std::mutex> swap_lock(swap_mu_);
  const auto snap = live_->Get();
  if (snap == nullptr || !snap->model->has_factors()) return;
  const FactorModel& m = *snap->model;
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "recloop serve: adding new items failed: %s\n",
                 std::string(s.message()).c_str());
  };
  // The user side as a model whose "items" are the users: folding an item in is then exactly a
  // user fold-in of that model (one ALS item half-step, against the Gram matrix of all users).
  if (item_fold_version_ != snap->version() || item_fold_ == nullptr) {
    auto side = std::make_unique<FactorModel>();
    side->params = m.params;
    side->items = m.users;
    side->users = m.items;
    side->item_factors = m.user_factors;
    side->item_bias = m.user_bias;
    side->user_bias = m.item_bias;
    side->user_prior = m.item_prior;  // BPMF: an item is folded in under the items' prior
    side->item_prior = m.user_prior;
    side->global_mean = m.global_mean;
    side->min_value = m.min_value;
    side->max_value = m.max_value;
    auto fold = FoldIn::Create(*side);
    if (!fold.ok()) return fail(fold.status());
    user_side_ = std::move(side);
    item_fold_ = std::make_unique<FoldIn>(*std::move(fold));
    item_fold_version_ = snap->version();
  }
  const bool sum = EventDuplicatePolicy(m.params.feedback) == DuplicatePolicy::kSum;
  std::vector<std::string> names;
  std::vector<FoldedUser> folded;
  std::vector<float> popularity;
  std::set<std::string> users;
  for (const auto& [item, events] : items) {
    if (m.items.Find(item).has_value()) continue;  // a retrain brought it in meanwhile
    std::map<int32_t, float> by_user;
    for (const auto& [user, value] : events) {
      users.insert(user);
      const auto u = m.users.Find(user);
      if (!u) continue;
      if (sum) {
        by_user[*u] += value;
      } else {
        by_user[*u] = value;
      }
    }
    std::vector<int32_t> rows;
    std::vector<float> values;
    for (const auto& [u, v] : by_user) {
      rows.push_back(u);
      values.push_back(v);
    }
    auto f = item_fold_->Fold(rows, values);
    if (!f.ok()) return fail(f.status());
    if (f->cold_start) continue;
    names.push_back(item);
    folded.push_back(*std::move(f));
    popularity.push_back(static_cast<float>(by_user.size()));
  }
  if (names.empty()) return;
  auto next = std::make_shared<FactorModel>(m);
  const int32_t old_items = m.num_items();
  const int32_t added = static_cast<int32_t>(names.size());
  next->item_factors.conservativeResize(old_items + added, Eigen::NoChange);
  if (next->has_biases()) next->item_bias.conservativeResize(old_items + added);
  next->item_popularity.conservativeResize(old_items + added);
  for (int32_t j = 0; j < added; ++j) {
    next->items.GetOrAdd(names[j]);
    next->item_factors.row(old_items + j) = folded[j].factors.transpose();
    if (next->has_biases()) next->item_bias[old_items + j] = folded[j].bias;
    next->item_popularity[old_items + j] = popularity[j];
  }
  next->seen = CsrMatrix::FromArrays(m.seen.rows(), old_items + added, m.seen.indptr(),
                                     m.seen.indices(), m.seen.values());
  ItemIndexOptions index_options;
  index_options.type = snap->index != nullptr ? snap->index->type() : IndexType::kAuto;
  if (snap->index != nullptr && snap->index->type() == IndexType::kHnsw) {
    index_options.hnsw_ef_search = snap->index->default_ef_search();
  }
  index_options.build_threads = std::max(1, options_.threads);
  auto index = ItemIndex::Build(*next, index_options);
  if (!index.ok()) return fail(index.status());
  auto prepared =
      live_->PrepareExtension(next, std::make_shared<const ItemIndex>(*std::move(index)));
  if (!prepared.ok()) return fail(prepared.status());
  // Their users are folded in again first, so that nobody is shown a new item they just bought
  // (the same version: the live snapshot ignores the new items' indices in these entries). No
  // fold against the old snapshot may be published between this and the activation: it would
  // replace a user's entry with one that does not count the new item as seen.
  {
    std::unique_lock<std::shared_mutex> extending(overlay_->extension_mutex());
    if (absl::Status s = RefoldUsers(**prepared, users); !s.ok()) return fail(s);
    {
      std::lock_guard<std::mutex> lock(mu_);
      new_items_added_ += static_cast<uint64_t>(added);
    }
    if (absl::Status s = live_->Activate(*std::move(prepared)); !s.ok()) return fail(s);
  }
  std::fprintf(stderr, "recloop serve: %d new item(s) folded in and indexed (%s%s)\n", added,
               names[0].c_str(), added > 1 ? ", ..." : "");
}


absl::Status Retrainer::SwapInLocked(const std::string& version_dir) {
  ASSIGN_OR_RETURN(auto prepared, live_->Prepare(version_dir));
  const bool folds = prepared->fold_in != nullptr;
  int64_t seen = 0;
  if (folds) {
    ASSIGN_OR_RETURN(seen, RefoldAfter(*prepared, EventsThroughSeq(*prepared->model, *events_)));
  }
  RETURN_IF_ERROR(live_->Activate(prepared));
  if (folds) {
    // Events that arrived while the first pass ran were folded against the old version.
    RETURN_IF_ERROR(RefoldAfter(*prepared, seen).status());
  }
  overlay_->KeepOnly(prepared->version());
  return absl::OkStatus();
}

absl::StatusOr<std::string> Retrainer::Rollback() {
  std::lock_guard<std::mutex> swap_lock(swap_mu_);
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
  RETURN_IF_ERROR(SwapInLocked(models_dir + "/" + previous));
  RETURN_IF_ERROR(SetCurrentVersion(models_dir, previous));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++rollbacks_;
  }
  std::fprintf(stderr, "recloop serve: rolled back from %s to %s\n", snap->version().c_str(),
               previous.c_str());
  return previous;
}

std::string Retrainer::RenderMetrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out =
      "# HELP recloop_retrain_total Background retrains by outcome (refused: the promotion gate "
      "refused the candidate).\n# TYPE recloop_retrain_total counter\n";
  for (const char* outcome : kOutcomes) {
    const auto it = outcomes_.find(outcome);
    absl::StrAppend(&out, "recloop_retrain_total{outcome=\"", outcome, "\"} ",
                    it == outcomes_.end() ? 0 : it->second, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP recloop_retrain_running 1 while a retrain runs.\n"
                  "# TYPE recloop_retrain_running gauge\nrecloop_retrain_running ",
                  running_.load() ? 1 : 0,
                  "\n# HELP recloop_retrain_pending_events Events stored since the last retrain "
                  "started.\n# TYPE recloop_retrain_pending_events gauge\n"
                  "recloop_retrain_pending_events ",
                  pending_events_,
                  "\n# HELP recloop_new_items_total New items folded in and indexed before a "
                  "retrain.\n# TYPE recloop_new_items_total counter\nrecloop_new_items_total ",
                  new_items_added_,
                  "\n# HELP recloop_model_rollbacks_total Rollbacks to an earlier version.\n"
                  "# TYPE recloop_model_rollbacks_total counter\nrecloop_model_rollbacks_total ",
                  rollbacks_, "\n");
  if (last_ && !last_->gate.metric.empty() && !last_->gate.skipped) {
    absl::StrAppend(&out,
                    "# HELP recloop_retrain_gate_metric The last gate's metric on the holdout.\n"
                    "# TYPE recloop_retrain_gate_metric gauge\n"
                    "recloop_retrain_gate_metric{model=\"candidate\",metric=\"",
                    last_->gate.metric, "\"} ", last_->gate.candidate,
                    "\nrecloop_retrain_gate_metric{model=\"live\",metric=\"", last_->gate.metric,
                    "\"} ", last_->gate.live, "\n");
  }
  if (last_) {
    absl::StrAppend(&out,
                    "# HELP recloop_retrain_last_seconds Wall time of the last retrain.\n"
                    "# TYPE recloop_retrain_last_seconds gauge\nrecloop_retrain_last_seconds ",
                    last_->seconds, "\n");
  }
  return out;
}

}  // namespace recloop
