#include "serving/new_item_indexer.h"

#include <utility>

#include "data/event_interactions.h"
#include "engine/item_index.h"
#include "engine/model_edit.h"
#include "engine/status_macros.h"

namespace recloop {

NewItemIndexer::NewItemIndexer(LiveModel* live, ModelSwapper* swapper, FeedbackOptions feedback,
                               NewItemIndexerOptions options, Metrics* metrics, Logger* log)
    : live_(live),
      swapper_(swapper),
      feedback_(std::move(feedback)),
      options_(options),
      metrics_(metrics),
      log_(log) {}

bool NewItemIndexer::Note(std::span<const Event> events) {
  // Looked up before taking the lock: this runs on every POST.
  std::vector<std::pair<const Event*, float>> unknown_items;
  if (const auto snap = live_->Get();
      options_.min_events > 0 && snap != nullptr && snap->model->has_factors()) {
    const FactorModel& m = *snap->model;
    for (const Event& e : events) {
      if (m.items.Find(e.item).has_value()) continue;
      const auto value =
          EventValue(e, m.params.feedback, feedback_.type_weights, RatingNeutralOf(m.params));
      if (value && m.users.Find(e.user).has_value()) unknown_items.emplace_back(&e, *value);
    }
  }
  if (unknown_items.empty()) return false;
  bool due = false;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [event, value] : unknown_items) {
    const Event& e = *event;
    auto it = events_.find(e.item);
    if (it == events_.end()) {
      if (events_.size() >= 10'000) continue;
      it = events_.emplace(e.item, std::vector<std::pair<std::string, float>>()).first;
    }
    if (it->second.size() < 1000) it->second.emplace_back(e.user, value);
    if (static_cast<int>(it->second.size()) >= options_.min_events && due_.insert(e.item).second) {
      due = true;
    }
  }
  return due;
}

bool NewItemIndexer::has_due() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !due_.empty();
}

void NewItemIndexer::IndexDue() {
  ItemEvents items;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& item : due_) {
      items[item] = std::move(events_[item]);
      events_.erase(item);
    }
    due_.clear();
  }
  if (!items.empty()) AddNewItems(items);
}

absl::StatusOr<const FoldIn*> NewItemIndexer::ItemFold(const ModelSnapshot& snap) {
  if (item_fold_version_ != snap.version() || item_fold_ == nullptr) {
    auto side = std::make_unique<FactorModel>(SwapSides(*snap.model));
    ASSIGN_OR_RETURN(FoldIn fold, FoldIn::Create(*side));
    user_side_ = std::move(side);
    item_fold_ = std::make_unique<FoldIn>(std::move(fold));
    item_fold_version_ = snap.version();
  }
  return item_fold_.get();
}

void NewItemIndexer::AddNewItems(const ItemEvents& items) {
  auto swap_lock = swapper_->Lock();
  const auto snap = live_->Get();
  if (snap == nullptr || !snap->model->has_factors()) return;
  const FactorModel& m = *snap->model;
  auto fail = [this](const absl::Status& s) {
    log_->Error("adding new items failed: %s", std::string(s.message()));
  };
  auto item_fold = ItemFold(*snap);
  if (!item_fold.ok()) return fail(item_fold.status());
  std::vector<std::string> names;
  std::vector<FoldedUser> folded;
  std::vector<float> popularity;
  std::set<std::string> users;
  for (const auto& [item, events] : items) {
    if (m.items.Find(item).has_value()) continue;  // a retrain brought it in meanwhile
    // The item's history over the model's users.
    FoldHistory by_user(m);
    for (const auto& [user, value] : events) {
      users.insert(user);
      if (const auto u = m.users.Find(user)) by_user.Add(*u, value);
    }
    by_user.SortByItem();
    auto f = by_user.FoldWith(**item_fold);
    if (!f.ok()) return fail(f.status());
    if (f->cold_start) continue;
    names.push_back(item);
    folded.push_back(*std::move(f));
    popularity.push_back(static_cast<float>(by_user.size()));
  }
  if (names.empty()) return;
  auto next = AppendItems(m, names, folded, popularity);
  if (!next.ok()) return fail(next.status());
  auto model = std::make_shared<const FactorModel>(*std::move(next));
  // The new items are added to a copy of the live graph: rebuilding the index of a large
  // catalogue for a few new items took most of a core for tens of seconds (BENCHMARKS.md,
  // issue 22).
  auto index = snap->index != nullptr
                   ? snap->index->Extend(*model, options_.build_threads)
                   : ItemIndex::Build(*model, IndexOptionsLike(*snap, options_.build_threads));
  if (!index.ok()) return fail(index.status());
  const int64_t added = static_cast<int64_t>(names.size());
  const absl::Status s = swapper_->ExtendLocked(
      std::move(model), std::make_shared<const ItemIndex>(*std::move(index)), users, [&] {
        if (metrics_ != nullptr) metrics_->CountNewItems(added);
      });
  if (!s.ok()) return fail(s);
  log_->Info("%d new item(s) folded in and indexed (%s%s)", added, names[0],
             added > 1 ? ", ..." : "");
}

}  // namespace recloop
