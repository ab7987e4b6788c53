// CatalogStore: what the storefront has told the server about its items (categories, whether
// each may be recommended, a display title), kept durably in an SQLite database (WAL mode,
// synchronous FULL) so that an item marked unavailable stays so across restarts and model versions.
// Items are keyed by external ID, so an entry also applies to items that only a later model knows.
#ifndef RECLOOP_SERVING_CATALOG_STORE_H_
#define RECLOOP_SERVING_CATALOG_STORE_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;

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
  // Opens (creating if missing) the database at `path`. Errors: Unavailable naming the path if
  // it cannot be opened or is not a catalogue database.
  static absl::StatusOr<std::unique_ptr<CatalogStore>> Open(const std::string& path);
  ~CatalogStore();
  CatalogStore(const CatalogStore&) = delete;
  CatalogStore& operator=(const CatalogStore&) = delete;

  // Inserts or replaces the entry of `item`; durable when it returns OK. Errors: Internal with
  // SQLite's message.
  absl::Status Put(const std::string& item, const CatalogEntry& entry);
  // Inserts or replaces every entry of `entries` in one transaction (one fsync): all or none.
  // Errors: Internal with SQLite's message.
  absl::Status PutAll(const CatalogMap& entries);
  // Every entry. Errors: Internal (or DataLoss for a row that does not parse).
  absl::StatusOr<CatalogMap> LoadAll() const;

 private:
  explicit CatalogStore(sqlite3* db, std::string path);
  mutable std::mutex mu_;  // one statement at a time on the connection
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::string path_;
};

}  // namespace recloop

#endif  // RECLOOP_SERVING_CATALOG_STORE_H_
