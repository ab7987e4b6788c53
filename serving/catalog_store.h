// CatalogStore: what the storefront has told the server about its items (categories, whether
// each may be recommended, a display title), kept durably in an SQLite database (WAL mode,
// synchronous FULL) beside one server, or in PostgreSQL shared by replicas, so that an item
// marked unavailable stays so across restarts, model versions and replicas.
// Items are keyed by external ID, so an entry also applies to items that only a later model knows.
#ifndef RECLOOP_SERVING_CATALOG_STORE_H_
#define RECLOOP_SERVING_CATALOG_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace recloop {

struct CatalogEntry {
  std::vector<std::string> categories;  // any order, no duplicates
  bool available = true;
  std::string title;  // for people (the demo storefront); may be empty
  friend bool operator==(const CatalogEntry&, const CatalogEntry&) = default;
};

using CatalogMap = absl::flat_hash_map<std::string, CatalogEntry>;

// Thread safety: every method may be called concurrently (calls are serialised inside).
class CatalogStore {
 public:
  // Opens (creating if missing) the catalogue at `path`: PostgreSQL for a postgresql:// URL,
  // shared by the replicas of a deployment (serving/pg_catalog_store.cc), else an SQLite file.
  // Errors: Unavailable naming the path (a URL without its password) if it cannot be opened or
  // is not a catalogue database.
  static absl::StatusOr<std::unique_ptr<CatalogStore>> Open(const std::string& path);
  virtual ~CatalogStore() = default;
  CatalogStore(const CatalogStore&) = delete;
  CatalogStore& operator=(const CatalogStore&) = delete;

  // Inserts or replaces the entry of `item`; durable when it returns OK. Errors: Internal with
  // the database's message; Unavailable when it cannot be reached.
  absl::Status Put(const std::string& item, const CatalogEntry& entry) {
    return PutAll({{item, entry}});
  }
  // Inserts or replaces every entry of `entries` in one transaction (one fsync): all or none.
  // Errors: as Put.
  virtual absl::Status PutAll(const CatalogMap& entries) = 0;
  // Every entry; `*version` (if given) gets the version they reflect, for ChangesSince.
  // Errors: Internal (or DataLoss for a row that does not parse).
  virtual absl::StatusOr<CatalogMap> LoadAll(int64_t* version = nullptr) const = 0;

  // True when other servers write to the same catalogue (PostgreSQL).
  virtual bool shared() const { return false; }
  // The entries written (by any server) after `*version`, which moves to the latest version
  // seen. A store no other server writes to has none. Errors: as LoadAll.
  virtual absl::StatusOr<CatalogMap> ChangesSince(int64_t* version) const;

 protected:
  CatalogStore() = default;
};

// CatalogStore::Open for a postgresql:// URL (serving/pg_catalog_store.cc).
absl::StatusOr<std::unique_ptr<CatalogStore>> OpenPgCatalogStore(const std::string& url);

}  // namespace recloop

#endif  // RECLOOP_SERVING_CATALOG_STORE_H_
