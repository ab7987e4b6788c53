// LiveModel: the model version the server answers from, with its item index and the storefront's
// catalogue (availability, categories), published as one immutable snapshot behind an atomic
// shared pointer. A request loads the pointer once and uses that snapshot to the end, so a swap
// (a new model version, a catalogue change) never blocks or breaks a request in flight.
#ifndef RECLOOP_SERVING_LIVE_MODEL_H_
#define RECLOOP_SERVING_LIVE_MODEL_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/factor_model.h"
#include "engine/fold_in.h"
#include "engine/id_map.h"
#include "engine/item_index.h"
#include "engine/recommender.h"
#include "serving/catalog_store.h"

namespace recloop {

// A process-wide unique number, increasing, for each immutable object a request ranks from (a
// snapshot, a folded user): a cache keyed by it cannot mistake a new object for a freed one at
// the same address (serving/ranked_cache.h). Thread-safe.
uint64_t NextServingSerial();

// The catalogue a models directory uses when LiveModelOptions::catalog_path is empty.
std::string DefaultCatalogPath(const std::string& models_dir);

// The catalogue titles of a model's items, packed in one buffer (8 bytes per item beside the
// text, not a string object per item), for ?details=true.
struct ItemTitles {
  std::string text;            // every item's title, concatenated in item order
  std::vector<uint64_t> ends;  // ends[i]: where item i's title ends in text (size num_items)

  std::string_view Title(int32_t item) const {
    const uint64_t begin = item == 0 ? 0 : ends[item - 1];
    return std::string_view(text).substr(begin, ends[item] - begin);
  }
};

// Everything one request needs; immutable once published.
struct ModelSnapshot {
  std::shared_ptr<const FactorModel> model;
  // The version's rating head (engine/model_io.h LoadRatingHead), matched to `model` by external
  // IDs; null when the version has none. It predicts from the trained user vectors only.
  std::shared_ptr<const FactorModel> rating_head;
  std::shared_ptr<const ItemIndex> index;  // null for a popularity-only model
  std::shared_ptr<const ItemCatalog> catalog;
  std::shared_ptr<const ItemTitles> titles;  // the catalogue's titles, by item index
  std::shared_ptr<const Recommender> recommender;
  // Folds users in against this model (null for a popularity model). Refers to `model`.
  std::shared_ptr<const FoldIn> fold_in;
  // Category names to the ids the catalogue's category lists use.
  std::shared_ptr<const IdMap> categories;
  std::string metadata_json;     // the version's Protobuf metadata as JSON (GET /v1/model)
  uint64_t catalog_changes = 0;  // LiveModel's count of catalogue changes when it was built
  // The number of the model and item index this snapshot ranks with (NextServingSerial): a swap
  // or an extension (new items indexed) gets a new one; a catalogue change, which publishes a new
  // snapshot of the same model and index, keeps it. Rankings cached under it
  // (serving/ranked_cache.h) stay exact across catalogue changes because they are filtered by
  // the catalogue when they are used.
  uint64_t ranking_serial = 0;
  // The earlier ranking serials this snapshot extends, oldest first: snapshots of the same
  // version whose model and index this one's only add items to (an extension: new items
  // appended, every other item and user unchanged), each with its item count. A ranking cached
  // under one of them still holds for the items it had, so it holds for this snapshot unless an
  // item added since would enter it (serving/ranked_cache.h CarryForward). Empty after a swap.
  struct EarlierRanking {
    uint64_t serial = 0;
    int32_t items = 0;
  };
  std::vector<EarlierRanking> extends;  // at most kMaxExtends

  static constexpr size_t kMaxExtends = 16;

  const std::string& version() const { return model->lineage.version; }
  // Item `item`'s catalogue title and category names as the storefront set them (empty for an
  // item without an entry): what LiveModel::GetItem returns, read without its lock.
  std::string_view Title(int32_t item) const { return titles->Title(item); }
  std::vector<std::string> CategoryNames(int32_t item) const;
};

struct LiveModelOptions {
  // Models directory written by `recloop train --out`; its `current` version is served.
  std::string models_dir;
  // SQLite file of the item catalogue, or a postgresql:// URL (shared by replicas); empty =
  // MODELS_DIR/catalog.db.
  std::string catalog_path;
};

// Thread safety: Get() is lock-free and may be called from any number of threads at once;
// Reload() and SetItem() may be called concurrently with Get() and with each other (writers are
// serialised inside).
class LiveModel {
 public:
  // Opens the catalogue and loads MODELS_DIR/current if there is one (a server may start
  // before the first model is trained; Get() is null until then). Errors: InvalidArgument if
  // models_dir is empty; the catalogue's or LoadModel's errors (a corrupted model is refused).
  static absl::StatusOr<std::unique_ptr<LiveModel>> Open(const LiveModelOptions& options);

  // The snapshot to answer from, or null while no model is loaded.
  std::shared_ptr<const ModelSnapshot> Get() const {
    return snapshot_.load(std::memory_order_acquire);
  }

  // Loads MODELS_DIR/current (or the version directory `version_dir` when given), with its
  // rating head if it has one, and publishes it. On error the live snapshot is unchanged. Errors:
  // NotFound if there is no model; the loader's errors otherwise.
  absl::Status Reload(const std::string& version_dir = "");

  // Reload in two steps, for a swap that must prepare state against the new model before it
  // goes live (serving/retrainer.h): Prepare loads a version (as Reload) into a snapshot that is
  // not published; Activate publishes it, with the catalogue as it is at that moment. Errors:
  // as Reload.
  absl::StatusOr<std::shared_ptr<const ModelSnapshot>> Prepare(const std::string& version_dir);
  absl::Status Activate(std::shared_ptr<const ModelSnapshot> prepared);

  // A snapshot of `model` (an in-memory extension of the live version, e.g. with new items
  // appended: same version, same user side, item indices of existing items unchanged) with
  // `index` and the live version's rating head, for Activate. Errors: the snapshot's (Recommender,
  // FoldIn).
  absl::StatusOr<std::shared_ptr<const ModelSnapshot>> PrepareExtension(
      std::shared_ptr<const FactorModel> model, std::shared_ptr<const ItemIndex> index);

  const std::string& models_dir() const { return options_.models_dir; }
  const std::string& catalog_path() const { return options_.catalog_path; }

  // Stores `entry` for `item` durably, then publishes a snapshot whose filters use it (the item
  // may be unknown to the model: the entry waits for a model that knows it). Errors: the
  // catalogue store's.
  absl::Status SetItem(const std::string& item, CatalogEntry entry);

  // On a catalogue shared with other replicas (CatalogStore::shared): applies the entries they
  // wrote since the last call, as SetItem does without storing them again (the replica
  // follower calls it, serving/replica_follower.h). Errors: the catalogue store's.
  absl::Status FollowCatalog();

  // The catalogue entry of `item`, if one was ever set. Takes the writers' mutex: request paths
  // that only need the live model's items read ModelSnapshot::Title/CategoryNames instead.
  std::optional<CatalogEntry> GetItem(const std::string& item) const;

 private:
  LiveModel() = default;
  // A snapshot of `model` + `rating_head` + `index` with `catalog` and `titles` (both null:
  // built from catalog_) and `fold_in` (null: made for the model unless the live snapshot has
  // the same model).
  absl::StatusOr<std::shared_ptr<ModelSnapshot>> MakeSnapshot(
      std::shared_ptr<const FactorModel> model, std::shared_ptr<const FactorModel> rating_head,
      std::shared_ptr<const ItemIndex> index, std::string metadata_json,
      std::shared_ptr<const ItemCatalog> catalog, std::shared_ptr<const ItemTitles> titles,
      std::shared_ptr<const FoldIn> fold_in = nullptr) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Publishes `entry` of `item` (already stored) in catalog_ and a new snapshot.
  absl::Status ApplyItemLocked(const std::string& item, CatalogEntry entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  LiveModelOptions options_;
  std::unique_ptr<CatalogStore> store_;
  std::atomic<std::shared_ptr<const ModelSnapshot>> snapshot_;
  mutable std::mutex mu_;  // serialises writers
  CatalogMap catalog_ ABSL_GUARDED_BY(mu_);
  // SetItem calls so far: a prepared snapshot's catalogue is stale if it changed since.
  uint64_t catalog_changes_ ABSL_GUARDED_BY(mu_) = 0;
  // The shared catalogue's version catalog_ reflects (CatalogStore::ChangesSince).
  int64_t catalog_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const IdMap> categories_ ABSL_GUARDED_BY(mu_) = std::make_shared<IdMap>();
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_LIVE_MODEL_H_
