// FeedbackFolder: the server's one fold path. Every re-fold of a user after new events goes
// through it, whoever asks: the Api (a user's fresh feedback, their erasure, read-your-writes),
// the model swapper (every user with newer events against a version about to go live, and the
// users of new items against an extended snapshot), and a restarted server (everyone with
// events newer than the model). It owns the user overlay (serving/feedback.h), the fold queue
// (serving/fold_queue.h) and the locks that order folds against erasures and extensions:
//
//   - a fold against the live snapshot holds the extension lock shared, from taking the
//     snapshot to publishing its entry; an extension (new items indexed into the live version,
//     same version) holds it exclusively from re-folding the new items' users to activating the
//     extended snapshot. So a fold against the old snapshot, which does not count the new item
//     as seen and would show a buyer the item they just bought, is never published after them;
//   - every fold holds the erasure lock shared from reading the user's events to publishing,
//     an erasure exclusively from deleting them to publishing the erased entry, so a fold that
//     read the history before an erasure cannot publish its vector after it;
//   - the extension lock is taken before the erasure lock.
// Entries belong to one model version; a swap folds the new version's beside the live ones and
// then drops the old version's (KeepOnly).
#ifndef RECLOOP_SERVING_FEEDBACK_FOLDER_H_
#define RECLOOP_SERVING_FEEDBACK_FOLDER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/logger.h"
#include "data/event_store.h"
#include "serving/feedback.h"
#include "serving/fold_queue.h"
#include "serving/live_model.h"
#include "serving/metrics.h"

namespace recloop {

// Thread safety: every public method may be called from any thread.
class FeedbackFolder {
 public:
  // `live` and `events` must outlive the folder. `events` may be null (a server without
  // feedback): the overlay then stays empty and nothing is queued. `metrics` (may be null)
  // receives the queue's freshness lag; failed background folds are logged to `log`. Starts
  // the queue's threads (serving/fold_queue.h).
  FeedbackFolder(LiveModel* live, EventStore* events, FeedbackOptions feedback,
                 FoldQueueOptions queue = {}, Metrics* metrics = nullptr,
                 Logger* log = StderrLog());
  ~FeedbackFolder();  // stops the queue after the folds in flight
  FeedbackFolder(const FeedbackFolder&) = delete;
  FeedbackFolder& operator=(const FeedbackFolder&) = delete;

  // The folded users, for lookups.
  const UserOverlay& overlay() const { return overlay_; }
  const FeedbackOptions& feedback() const { return feedback_; }

  // Folds `users` in again from their stored events against the live snapshot and publishes
  // their entries, with one read of the store for all of them (EventStore::Histories). Errors:
  // FailedPrecondition without a model or without events; the store's; FoldUser's (the first
  // one; the other users are still folded).
  absl::Status FoldNow(std::span<const std::string> users);
  absl::Status FoldNow(const std::string& user) {
    return FoldNow(std::span<const std::string>(&user, 1));
  }

  // `users` have new durable events, acknowledged now: they are folded in off this thread.
  void Enqueue(std::span<const std::string> users);
  // Returns once every event of `user` enqueued before the call is folded in
  // (FoldQueue::EnsureFresh): read-your-writes.
  void EnsureFresh(const std::string& user);
  // Users waiting or being folded.
  int64_t backlog() const { return queue_ != nullptr ? queue_->backlog() : 0; }

  // Erases every stored event of `user` and publishes an erased entry for the live version (its
  // training interactions of the user no longer count). Returns the events erased. Errors:
  // FailedPrecondition without events; the store's.
  absl::StatusOr<int64_t> EraseUser(const std::string& user);

  // `user` folded against `snap` (any snapshot, e.g. an A/B variant's own model version) from
  // their stored events after its last trained event, without publishing; null when they have
  // none and were not erased since (their trained row, if any, stands) or there is no store.
  // Errors: the store's; FoldUser's.
  absl::StatusOr<std::shared_ptr<const FoldedUserEntry>> FoldAgainst(const ModelSnapshot& snap,
                                                                     const std::string& user) const;

  // Folds `users` in again against `snap` (live or about to be) and publishes them.
  // Errors: the store's; FoldUser's (the first one stops the pass after its batch).
  absl::Status RefoldUsers(const ModelSnapshot& snap, const std::set<std::string>& users);
  // Folds in again every user with events after `after_seq`, and every user erased after the
  // model's last trained event, against `snap`. Returns the largest seq seen (`after_seq` if
  // none) and counts the users in *users if given. Errors: as RefoldUsers.
  absl::StatusOr<int64_t> RefoldAfter(const ModelSnapshot& snap, int64_t after_seq,
                                      int64_t* users = nullptr);
  // A restarted server's catch-up (the overlay is in memory): folds in against the live
  // snapshot every user with events newer than its model. Returns the users folded (0 without
  // a model, a factor model or events). Errors: as RefoldUsers.
  absl::StatusOr<int64_t> RestoreFolds();

  // Publishes `extended` (an extension of the live version, serving/live_model.h
  // PrepareExtension) after folding `users` in again against it, with no fold against the
  // older live snapshot published in between; `before_activate` (may be null) runs just before
  // activation. Errors: as RefoldUsers and LiveModel::Activate (then nothing is activated).
  absl::Status ActivateExtension(std::shared_ptr<const ModelSnapshot> extended,
                                 const std::set<std::string>& users,
                                 const std::function<void()>& before_activate = nullptr);

  // Drops every overlay entry of a version other than `model_version` (after a swap).
  void KeepOnly(const std::string& model_version) { overlay_.KeepOnly(model_version); }

 private:
  // Folds `users` against `snap` and publishes; the caller holds erasure_mu_ shared. Errors:
  // the store's; FoldUser's (the first one; the other users are still folded).
  absl::Status FoldAndPutLocked(const ModelSnapshot& snap, std::span<const std::string> users);

  LiveModel* live_;
  EventStore* events_;
  const FeedbackOptions feedback_;
  UserOverlay overlay_;
  mutable std::shared_mutex erasure_mu_;
  mutable std::shared_mutex extension_mu_;  // taken before erasure_mu_
  // Last: its threads call FoldNow, so it stops before the members above go.
  std::unique_ptr<FoldQueue> queue_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_FEEDBACK_FOLDER_H_
