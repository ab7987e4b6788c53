#include "serving/feedback_folder.h"

#include <algorithm>
#include <mutex>
#include <utility>

#include "data/event_interactions.h"
#include "engine/status_macros.h"

namespace recloop {

FeedbackFolder::FeedbackFolder(LiveModel* live, EventStore* events, FeedbackOptions feedback,
                               FoldQueueOptions queue, Metrics* metrics, Logger* log)
    : live_(live), events_(events), feedback_(std::move(feedback)) {
  if (events_ != nullptr) {
    queue_ = std::make_unique<FoldQueue>(
        [this](std::span<const std::string> users) { return FoldNow(users); }, metrics, queue, log);
  }
}

FeedbackFolder::~FeedbackFolder() { queue_.reset(); }

absl::Status FeedbackFolder::FoldAndPutLocked(const ModelSnapshot& snap,
                                              std::span<const std::string> users) {
  const int64_t through = EventsThroughSeq(*snap.model, *events_);
  ASSIGN_OR_RETURN(const auto histories, events_->Histories(users, through));
  absl::Status first;
  for (size_t i = 0; i < users.size(); ++i) {
    const auto& h = histories[i];
    const bool erased = h.erased_at >= through;
    // An erased user's entry reflects the erasure's seq: it replaces an entry folded before
    // the erasure (UserOverlay::Put keeps the later one), e.g. on a replica that folded the
    // user's events before another replica erased them. Every event left is newer.
    const auto previous = overlay_.Find(users[i], snap.version());
    auto entry =
        FoldUser(snap, users[i], h.events, feedback_,
                 erased ? std::max(through, h.erased_at) : through, erased, previous.get());
    if (!entry.ok()) {
      if (first.ok()) first = entry.status();
      continue;
    }
    overlay_.Put(users[i], *std::move(entry));
  }
  return first;
}

absl::StatusOr<std::shared_ptr<const FoldedUserEntry>> FeedbackFolder::FoldAgainst(
    const ModelSnapshot& snap, const std::string& user) const {
  if (events_ == nullptr || !snap.model->has_factors()) return nullptr;
  const int64_t through = EventsThroughSeq(*snap.model, *events_);
  ASSIGN_OR_RETURN(const auto histories,
                   events_->Histories(std::span<const std::string>(&user, 1), through));
  const EventStore::UserHistory& h = histories[0];
  const bool erased = h.erased_at >= through;
  if (h.events.empty() && !erased) return nullptr;
  auto entry = FoldUser(snap, user, h.events, feedback_,
                        erased ? std::max(through, h.erased_at) : through, erased);
  if (!entry.ok()) return entry.status();
  return std::shared_ptr<const FoldedUserEntry>(*std::move(entry));
}

absl::Status FeedbackFolder::FoldNow(std::span<const std::string> users) {
  if (events_ == nullptr) return absl::FailedPreconditionError("no event store");
  std::shared_lock<std::shared_mutex> no_extension(extension_mu_);
  std::shared_lock<std::shared_mutex> no_erasure(erasure_mu_);
  const auto snap = live_->Get();
  if (snap == nullptr) return absl::FailedPreconditionError("no model loaded");
  return FoldAndPutLocked(*snap, users);
}

void FeedbackFolder::Enqueue(std::span<const std::string> users) {
  if (queue_ != nullptr) queue_->Enqueue(users, FoldQueue::Clock::now());
}

void FeedbackFolder::EnsureFresh(const std::string& user) {
  if (queue_ != nullptr) queue_->EnsureFresh(user);
}

absl::StatusOr<int64_t> FeedbackFolder::EraseUser(const std::string& user) {
  if (events_ == nullptr) return absl::FailedPreconditionError("no event store");
  // Waits for folds in flight: one that read the user's events before the deletion must not
  // publish its vector after the erasure below.
  std::unique_lock<std::shared_mutex> erasing(erasure_mu_);
  ASSIGN_OR_RETURN(const int64_t erased, events_->DeleteUser(user));
  // The live model forgets the user too: until a model trained without them is live, they are
  // answered as a new customer (their training interactions no longer count).
  if (const auto snap = live_->Get(); snap != nullptr) {
    auto entry = std::make_shared<FoldedUserEntry>();
    entry->model_version = snap->version();
    entry->erased = true;
    auto last = events_->LastSeq();
    entry->through_seq = last.ok() ? *last : 0;
    overlay_.Erase(user);
    overlay_.Put(user, std::move(entry));
  }
  return erased;
}

absl::Status FeedbackFolder::RefoldUsers(const ModelSnapshot& snap,
                                         const std::set<std::string>& users) {
  // In batches: one read of the store each, and an erasure waits for one batch at most.
  std::vector<std::string> batch;
  constexpr size_t kBatch = FoldQueueOptions{}.max_batch;
  batch.reserve(kBatch);
  for (auto it = users.begin(); it != users.end();) {
    batch.clear();
    for (; it != users.end() && batch.size() < kBatch; ++it) {
      batch.push_back(*it);
    }
    std::shared_lock<std::shared_mutex> no_erasure(erasure_mu_);
    RETURN_IF_ERROR(FoldAndPutLocked(snap, batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> FeedbackFolder::RefoldAfter(const ModelSnapshot& snap, int64_t after_seq,
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

absl::StatusOr<int64_t> FeedbackFolder::RestoreFolds() {
  if (events_ == nullptr) return 0;
  // Against the live snapshot, as FoldNow: no extension may activate meanwhile.
  std::shared_lock<std::shared_mutex> no_extension(extension_mu_);
  const auto snap = live_->Get();
  if (snap == nullptr || snap->fold_in == nullptr) return 0;
  int64_t users = 0;
  RETURN_IF_ERROR(RefoldAfter(*snap, EventsThroughSeq(*snap->model, *events_), &users).status());
  return users;
}

absl::Status FeedbackFolder::ActivateExtension(std::shared_ptr<const ModelSnapshot> extended,
                                               const std::set<std::string>& users,
                                               const std::function<void()>& before_activate) {
  // The users are folded in again first, so that nobody is shown a new item they just bought
  // (the same version: the live snapshot ignores the new items' indices in these entries). No
  // fold against the old snapshot may be published between this and the activation: it would
  // replace a user's entry with one that does not count the new item as seen.
  std::unique_lock<std::shared_mutex> extending(extension_mu_);
  RETURN_IF_ERROR(RefoldUsers(*extended, users));
  if (before_activate) before_activate();
  return live_->Activate(std::move(extended));
}

}  // namespace recloop
