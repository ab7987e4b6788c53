// ModelSwapper: the one way a model goes live in a server with feedback: prepare the snapshot,
// re-fold the users whose feedback it has not trained on into the overlay, activate. Shared by
// a promotion and a rollback (a version from the models directory, SwapInLocked) and by new
// items indexed into the live version (an in-memory extension, ExtendLocked):
//   1. the snapshot is prepared and not yet live (LiveModel::Prepare / PrepareExtension);
//   2. every user with events after the version's last trained event (an extension: the new
//      items' users) is folded in against it into the overlay, beside the live version's
//      entries (users keep being served meanwhile);
//   3. the snapshot goes live atomically (LiveModel::Activate);
//   4. a new version: users whose events arrived during step 2 are folded in again, and the old
//      version's overlay entries are dropped.
// So a user's feedback is never lost across a swap, and no request waits for one. The folds
// and their ordering against the Api's folds are the FeedbackFolder's
// (serving/feedback_folder.h).
#ifndef RECLOOP_SERVING_MODEL_SWAPPER_H_
#define RECLOOP_SERVING_MODEL_SWAPPER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "data/event_store.h"
#include "engine/item_index.h"
#include "serving/feedback_folder.h"
#include "serving/live_model.h"

namespace recloop {

// The options of an item index built as `snap`'s was (its type and HNSW beam width), with
// `threads` build threads (>= 1).
ItemIndexOptions IndexOptionsLike(const ModelSnapshot& snap, int threads);

// Thread safety: Lock() serialises swaps; the *Locked methods require it to be held.
class ModelSwapper {
 public:
  // All pointers must outlive the swapper.
  ModelSwapper(LiveModel* live, EventStore* events, FeedbackFolder* folder)
      : live_(live), events_(events), folder_(folder) {}

  // One swap (and the checks a caller makes before it) at a time.
  std::unique_lock<std::mutex> Lock() { return std::unique_lock<std::mutex>(mu_); }

  // Swaps the version in `version_dir` in (steps 1-4). Errors: the loader's, the store's and
  // the folds' (the live snapshot is then unchanged, or the new one live with some users
  // folded against the old version only, as after any failed fold).
  absl::Status SwapInLocked(const std::string& version_dir);

  // Publishes `model`, an extension of the live version (same version and user side, new
  // items appended), with `index`, after folding `users` in again against it (steps 1-3);
  // `before_activate` (may be null) runs just before it goes live. Errors: the snapshot's, the
  // folds' and Activate's (the live snapshot is then unchanged).
  absl::Status ExtendLocked(std::shared_ptr<const FactorModel> model,
                            std::shared_ptr<const ItemIndex> index,
                            const std::set<std::string>& users,
                            const std::function<void()>& before_activate = nullptr);

 private:
  LiveModel* live_;
  EventStore* events_;
  FeedbackFolder* folder_;
  std::mutex mu_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_MODEL_SWAPPER_H_
