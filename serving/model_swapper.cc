#include "serving/model_swapper.h"

#include <algorithm>
#include <utility>

#include "data/event_interactions.h"
#include "engine/status_macros.h"

namespace recloop {

ItemIndexOptions IndexOptionsLike(const ModelSnapshot& snap, int threads) {
  ItemIndexOptions options;
  options.type = snap.index != nullptr ? snap.index->type() : IndexType::kAuto;
  if (snap.index != nullptr && snap.index->type() == IndexType::kHnsw) {
    options.hnsw_ef_search = snap.index->default_ef_search();
  }
  options.build_threads = std::max(1, threads);
  return options;
}

absl::Status ModelSwapper::SwapInLocked(const std::string& version_dir) {
  ASSIGN_OR_RETURN(auto prepared, live_->Prepare(version_dir));
  const bool folds = prepared->fold_in != nullptr;
  int64_t seen = 0;
  if (folds) {
    ASSIGN_OR_RETURN(seen,
                     folder_->RefoldAfter(*prepared, EventsThroughSeq(*prepared->model, *events_)));
  }
  RETURN_IF_ERROR(live_->Activate(prepared));
  if (folds) {
    // Events that arrived while the first pass ran were folded against the old version.
    RETURN_IF_ERROR(folder_->RefoldAfter(*prepared, seen).status());
  }
  folder_->KeepOnly(prepared->version());
  return absl::OkStatus();
}

absl::Status ModelSwapper::ExtendLocked(std::shared_ptr<const FactorModel> model,
                                        std::shared_ptr<const ItemIndex> index,
                                        const std::set<std::string>& users,
                                        const std::function<void()>& before_activate) {
  ASSIGN_OR_RETURN(auto prepared, live_->PrepareExtension(std::move(model), std::move(index)));
  return folder_->ActivateExtension(std::move(prepared), users, before_activate);
}

}  // namespace recloop
