// NewItemIndexer: items the live model does not know yet, indexed before the next retrain. An
// item with `min_events` events from users the model knows gets an item vector folded in
// against the model's user side (engine/model_edit.h SwapSides: one ALS item half-step), is
// appended to a copy of the live model (AppendItems), and is added to a copy of the item index
// (ItemIndex::Extend: the graph is copied, not rebuilt) under the same version
// (ModelSwapper::ExtendLocked, which first folds the items' users in again, so that
// no buyer is shown a new item they just bought).
#ifndef RECLOOP_SERVING_NEW_ITEM_INDEXER_H_
#define RECLOOP_SERVING_NEW_ITEM_INDEXER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/logger.h"
#include "data/event_store.h"
#include "engine/fold_in.h"
#include "serving/feedback.h"
#include "serving/live_model.h"
#include "serving/metrics.h"
#include "serving/model_swapper.h"

namespace recloop {

struct NewItemIndexerOptions {
  // Events (from users the live model knows) an unknown item needs to be indexed; 0 = never.
  int min_events = 5;
  // Threads that build the item index.
  int build_threads = 1;
};

// Thread safety: Note() and has_due() may be called from any thread; IndexDue() from one
// thread at a time (the retrainer's).
class NewItemIndexer {
 public:
  // All pointers must outlive the indexer. `metrics` (may be null) counts the items added.
  NewItemIndexer(LiveModel* live, ModelSwapper* swapper, FeedbackOptions feedback,
                 NewItemIndexerOptions options, Metrics* metrics, Logger* log);

  // Notes stored `events`: those of items the live model does not know, from users it knows.
  // Returns true if an item reached min_events with them. Bounded memory: at most 10,000 items
  // are tracked, with at most 1,000 events each.
  bool Note(std::span<const Event> events);
  // Whether an item waits to be indexed.
  bool has_due() const;

  // Folds in and indexes every item due (see the header comment). Failures are logged; the
  // items are then dropped until a retrain brings them in.
  void IndexDue();

 private:
  using ItemEvents = std::map<std::string, std::vector<std::pair<std::string, float>>>;
  void AddNewItems(const ItemEvents& items);
  // The FoldIn over the live version's user side (built on first use per version), or an error.
  absl::StatusOr<const FoldIn*> ItemFold(const ModelSnapshot& snap);

  LiveModel* live_;
  ModelSwapper* swapper_;
  const FeedbackOptions feedback_;
  const NewItemIndexerOptions options_;
  Metrics* metrics_;
  Logger* log_;

  mutable std::mutex mu_;
  ItemEvents events_ ABSL_GUARDED_BY(mu_);          // item -> its (user, value) events so far
  std::set<std::string> due_ ABSL_GUARDED_BY(mu_);  // items that reached min_events
  // Used by IndexDue only: the live version's user side as a model whose items are the users.
  std::string item_fold_version_;
  std::unique_ptr<FactorModel> user_side_;
  std::unique_ptr<FoldIn> item_fold_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_NEW_ITEM_INDEXER_H_
