#include "serving/live_model.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "engine/model_io.h"
#include "engine/status_macros.h"

namespace recloop {

uint64_t NextServingSerial() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string DefaultCatalogPath(const std::string& models_dir) { return models_dir + "/catalog.db"; }
namespace {

// Whether `extended` is `base` with items appended (engine/model_edit.h AppendItems): the same
// version, users and user factors, and base's items first with the same names, factors and
// biases. Compares the arrays in full, once per extension (the same order of work as the copy
// AppendItems made): a list ranked against `base` then still holds against `extended` for base's
// items.
bool ExtendsModel(const FactorModel& extended, const FactorModel& base) {
  const int32_t n = base.num_items();
  const auto prefix_equal = [](const auto& longer, const auto& shorter) {
    return std::equal(shorter.data(), shorter.data() + shorter.size(), longer.data());
  };
  if (extended.lineage.version != base.lineage.version || n == 0 || extended.num_items() <= n ||
      !base.has_factors() || extended.item_factors.cols() != base.item_factors.cols() ||
      extended.user_factors.rows() != base.user_factors.rows() ||
      extended.user_factors.cols() != base.user_factors.cols() ||
      extended.item_bias.size() != (base.item_bias.size() == 0 ? 0 : extended.num_items())) {
    return false;
  }
  for (int32_t i = 0; i < n; ++i) {
    if (extended.items.External(i) != base.items.External(i)) return false;
  }
  return prefix_equal(extended.item_factors, base.item_factors) &&
         prefix_equal(extended.user_factors, base.user_factors) &&
         prefix_equal(extended.item_bias, base.item_bias);
}

// Adds any category of `entry` missing from `*categories`, copying the map only if one is new
// (snapshots share the old one).
void AddCategories(const CatalogEntry& entry, std::shared_ptr<const IdMap>* categories) {
  std::shared_ptr<IdMap> copy;
  for (const auto& name : entry.categories) {
    if ((copy ? copy->Find(name) : (*categories)->Find(name)).has_value()) continue;
    if (!copy) copy = std::make_shared<IdMap>(**categories);
    copy->GetOrAdd(name);
  }
  if (copy) *categories = std::move(copy);
}

// The catalogue of every item of `model` from the storefront's entries.
ItemCatalog BuildCatalog(const FactorModel& model, const CatalogMap& entries,
                         const IdMap& categories) {
  const int32_t n = model.num_items();
  ItemCatalog c;
  c.available.assign(n, 1);
  c.category_indptr.assign(static_cast<size_t>(n) + 1, 0);
  for (int32_t i = 0; i < n; ++i) {
    const auto it = entries.find(model.items.External(i));
    if (it != entries.end()) {
      c.available[i] = it->second.available ? 1 : 0;
      for (const auto& name : it->second.categories) {
        c.category_ids.push_back(*categories.Find(name));
      }
    }
    c.category_indptr[i + 1] = static_cast<int64_t>(c.category_ids.size());
  }
  return c;
}

// The titles of every item of `model` from the storefront's entries.
ItemTitles BuildTitles(const FactorModel& model, const CatalogMap& entries) {
  ItemTitles t;
  t.ends.reserve(model.num_items());
  for (int32_t i = 0; i < model.num_items(); ++i) {
    const auto it = entries.find(model.items.External(i));
    if (it != entries.end()) t.text += it->second.title;
    t.ends.push_back(t.text.size());
  }
  return t;
}

// `old` with item `item`'s title replaced.
ItemTitles PatchTitles(const ItemTitles& old, int32_t item, std::string_view title) {
  const uint64_t begin = item == 0 ? 0 : old.ends[item - 1];
  const uint64_t end = old.ends[item];
  ItemTitles t;
  t.text.reserve(old.text.size() - (end - begin) + title.size());
  t.text.append(old.text, 0, begin);
  t.text.append(title);
  t.text.append(old.text, end);
  t.ends = old.ends;
  for (size_t i = item; i < t.ends.size(); ++i) t.ends[i] = t.ends[i] - end + begin + title.size();
  return t;
}

// `old` with item `item`'s entry replaced: O(items) copies, no hashing.
ItemCatalog PatchCatalog(const ItemCatalog& old, int32_t item, const CatalogEntry& entry,
                         const IdMap& categories) {
  ItemCatalog c;
  c.available = old.available;
  c.available[item] = entry.available ? 1 : 0;
  std::vector<int32_t> ids;
  for (const auto& name : entry.categories) ids.push_back(*categories.Find(name));
  const int64_t begin = old.category_indptr[item];
  const int64_t end = old.category_indptr[item + 1];
  const int64_t delta = static_cast<int64_t>(ids.size()) - (end - begin);
  c.category_ids.reserve(old.category_ids.size() + std::max<int64_t>(delta, 0));
  c.category_ids.insert(c.category_ids.end(), old.category_ids.begin(),
                        old.category_ids.begin() + begin);
  c.category_ids.insert(c.category_ids.end(), ids.begin(), ids.end());
  c.category_ids.insert(c.category_ids.end(), old.category_ids.begin() + end,
                        old.category_ids.end());
  c.category_indptr = old.category_indptr;
  for (size_t i = item + 1; i < c.category_indptr.size(); ++i) c.category_indptr[i] += delta;
  return c;
}

}  // namespace

std::vector<std::string> ModelSnapshot::CategoryNames(int32_t item) const {
  std::vector<std::string> names;
  if (catalog->category_indptr.empty()) return names;
  for (int64_t j = catalog->category_indptr[item]; j < catalog->category_indptr[item + 1]; ++j) {
    names.push_back(categories->External(catalog->category_ids[j]));
  }
  return names;
}

absl::StatusOr<std::unique_ptr<LiveModel>> LiveModel::Open(const LiveModelOptions& options) {
  if (options.models_dir.empty()) return absl::InvalidArgumentError("no models directory given");
  std::error_code ec;
  std::filesystem::create_directories(options.models_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create models directory ", options.models_dir, ": ", ec.message()));
  }
  std::unique_ptr<LiveModel> live(new LiveModel());
  live->options_ = options;
  if (live->options_.catalog_path.empty()) {
    live->options_.catalog_path = DefaultCatalogPath(options.models_dir);
  }
  ASSIGN_OR_RETURN(live->store_, CatalogStore::Open(live->options_.catalog_path));
  ASSIGN_OR_RETURN(live->catalog_, live->store_->LoadAll(&live->catalog_version_));
  for (const auto& [item, entry] : live->catalog_) AddCategories(entry, &live->categories_);
  if (std::filesystem::exists(options.models_dir + "/current")) {
    RETURN_IF_ERROR(live->Reload());
  }
  return live;
}

absl::Status LiveModel::Reload(const std::string& version_dir) {
  ASSIGN_OR_RETURN(auto prepared, Prepare(version_dir));
  return Activate(std::move(prepared));
}

absl::StatusOr<std::shared_ptr<const ModelSnapshot>> LiveModel::Prepare(
    const std::string& version_dir) {
  ASSIGN_OR_RETURN(std::string dir,
                   ResolveModelDir(version_dir.empty() ? options_.models_dir : version_dir));
  ASSIGN_OR_RETURN(FactorModel loaded, LoadModel(dir));
  ASSIGN_OR_RETURN(std::optional<FactorModel> head, LoadRatingHead(dir));
  ASSIGN_OR_RETURN(std::string metadata, DescribeModel(dir, /*json=*/true));
  auto model = std::make_shared<const FactorModel>(std::move(loaded));
  std::shared_ptr<const FactorModel> rating_head;
  if (head) rating_head = std::make_shared<const FactorModel>(*std::move(head));
  ASSIGN_OR_RETURN(auto index, LoadOrBuildItemIndex(*model, dir));
  std::shared_ptr<const FoldIn> fold_in;
  if (model->has_factors()) {  // outside the lock: O(items * K^2) for implicit models
    ASSIGN_OR_RETURN(FoldIn f, FoldIn::Create(*model));
    fold_in = std::make_shared<const FoldIn>(std::move(f));
  }
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto snapshot,
                   MakeSnapshot(std::move(model), std::move(rating_head), std::move(index),
                                std::move(metadata), nullptr, nullptr, std::move(fold_in)));
  return std::shared_ptr<const ModelSnapshot>(std::move(snapshot));
}

absl::Status LiveModel::Activate(std::shared_ptr<const ModelSnapshot> prepared) {
  if (prepared == nullptr) return absl::InvalidArgumentError("no snapshot to activate");
  std::lock_guard<std::mutex> lock(mu_);
  if (prepared->catalog_changes != catalog_changes_) {
    // The catalogue changed since Prepare: rebuild the filters from the current one.
    ASSIGN_OR_RETURN(auto fresh,
                     MakeSnapshot(prepared->model, prepared->rating_head, prepared->index,
                                  prepared->metadata_json, nullptr, nullptr, prepared->fold_in));
    prepared = std::move(fresh);
  }
  snapshot_.store(std::move(prepared), std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const ModelSnapshot>> LiveModel::PrepareExtension(
    std::shared_ptr<const FactorModel> model, std::shared_ptr<const ItemIndex> index) {
  std::shared_ptr<const FoldIn> fold_in;
  if (model->has_factors()) {
    ASSIGN_OR_RETURN(FoldIn f, FoldIn::Create(*model));
    fold_in = std::make_shared<const FoldIn>(std::move(f));
  }
  // An extension of the live snapshot (AppendItems of its model: same version, its items first,
  // unchanged) keeps the live rankings usable for the items they had (ModelSnapshot::extends).
  // Compared before the lock (catalogue writes wait on it); used only if that snapshot is still
  // the live one under the lock.
  const auto compared = Get();
  const bool extends_compared = compared != nullptr && ExtendsModel(*model, *compared->model);
  std::lock_guard<std::mutex> lock(mu_);
  const auto current = Get();
  const bool extends_live =
      extends_compared && current != nullptr && current->model == compared->model;
  ASSIGN_OR_RETURN(
      auto snapshot,
      MakeSnapshot(std::move(model), current != nullptr ? current->rating_head : nullptr,
                   std::move(index), current != nullptr ? current->metadata_json : std::string(),
                   nullptr, nullptr, std::move(fold_in)));
  if (extends_live) {
    snapshot->extends = current->extends;
    snapshot->extends.push_back({current->ranking_serial, current->model->num_items()});
    if (snapshot->extends.size() > ModelSnapshot::kMaxExtends) {
      snapshot->extends.erase(snapshot->extends.begin());
    }
  }
  return std::shared_ptr<const ModelSnapshot>(std::move(snapshot));
}

absl::StatusOr<std::shared_ptr<ModelSnapshot>> LiveModel::MakeSnapshot(
    std::shared_ptr<const FactorModel> model, std::shared_ptr<const FactorModel> rating_head,
    std::shared_ptr<const ItemIndex> index, std::string metadata_json,
    std::shared_ptr<const ItemCatalog> catalog, std::shared_ptr<const ItemTitles> titles,
    std::shared_ptr<const FoldIn> fold_in) const {
  if (catalog == nullptr) {
    catalog = std::make_shared<const ItemCatalog>(BuildCatalog(*model, catalog_, *categories_));
    titles = std::make_shared<const ItemTitles>(BuildTitles(*model, catalog_));
  }
  ASSIGN_OR_RETURN(Recommender recommender, Recommender::Create(model, index, catalog));
  if (fold_in == nullptr) {
    if (const auto current = Get(); current != nullptr && current->model == model) {
      fold_in = current->fold_in;  // a catalogue change: same model, same fold-in
    } else if (model->has_factors()) {
      ASSIGN_OR_RETURN(FoldIn f, FoldIn::Create(*model));
      fold_in = std::make_shared<const FoldIn>(std::move(f));
    }
  }
  auto snapshot = std::make_shared<ModelSnapshot>();
  if (const auto current = Get();
      current != nullptr && current->model == model && current->index == index) {
    snapshot->ranking_serial = current->ranking_serial;  // a catalogue change
    snapshot->extends = current->extends;
  } else {
    snapshot->ranking_serial = NextServingSerial();
  }
  snapshot->fold_in = std::move(fold_in);
  snapshot->model = std::move(model);
  snapshot->rating_head = std::move(rating_head);
  snapshot->index = std::move(index);
  snapshot->catalog = std::move(catalog);
  snapshot->titles = std::move(titles);
  snapshot->recommender = std::make_shared<const Recommender>(std::move(recommender));
  snapshot->categories = categories_;
  snapshot->metadata_json = std::move(metadata_json);
  snapshot->catalog_changes = catalog_changes_;
  return snapshot;
}

absl::Status LiveModel::SetItem(const std::string& item, CatalogEntry entry) {
  std::sort(entry.categories.begin(), entry.categories.end());
  entry.categories.erase(std::unique(entry.categories.begin(), entry.categories.end()),
                         entry.categories.end());
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(store_->Put(item, entry));  // durable before it is visible
  return ApplyItemLocked(item, std::move(entry));
}

absl::Status LiveModel::FollowCatalog() {
  if (!store_->shared()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(CatalogMap changed, store_->ChangesSince(&catalog_version_));
  for (auto& [item, entry] : changed) {
    if (const auto it = catalog_.find(item); it != catalog_.end() && it->second == entry) {
      continue;  // this server's own write, applied already
    }
    RETURN_IF_ERROR(ApplyItemLocked(item, std::move(entry)));
  }
  return absl::OkStatus();
}

absl::Status LiveModel::ApplyItemLocked(const std::string& item, CatalogEntry entry) {
  AddCategories(entry, &categories_);
  catalog_[item] = entry;
  ++catalog_changes_;
  const auto current = Get();
  if (current == nullptr) return absl::OkStatus();
  const auto index = current->model->items.Find(item);
  if (!index) return absl::OkStatus();  // waits for a model that knows the item
  auto catalog = std::make_shared<const ItemCatalog>(
      PatchCatalog(*current->catalog, *index, entry, *categories_));
  auto titles =
      std::make_shared<const ItemTitles>(PatchTitles(*current->titles, *index, entry.title));
  ASSIGN_OR_RETURN(auto snapshot,
                   MakeSnapshot(current->model, current->rating_head, current->index,
                                current->metadata_json, std::move(catalog), std::move(titles)));
  snapshot_.store(std::move(snapshot), std::memory_order_release);
  return absl::OkStatus();
}

std::optional<CatalogEntry> LiveModel::GetItem(const std::string& item) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = catalog_.find(item);
  if (it == catalog_.end()) return std::nullopt;
  return it->second;
}

}  // namespace recloop
