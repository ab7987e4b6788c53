// IdMap: the two-way mapping between external string IDs (users, items: any form a storefront
// uses) and the dense int32 indices that rows of factor matrices are addressed by.
#ifndef RECLOOP_ENGINE_ID_MAP_H_
#define RECLOOP_ENGINE_ID_MAP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace recloop {

// Dense indices are assigned in order of first insertion: 0, 1, 2, ...
// Not thread-safe for writes; concurrent const calls are safe.
class IdMap {
 public:
  IdMap() = default;

  // Returns the index of `id`, inserting it with the next free index if absent.
  int32_t GetOrAdd(std::string_view id);

  // Returns the index of `id`, or std::nullopt if it was never added.
  std::optional<int32_t> Find(std::string_view id) const;

  // Returns the external ID of index `index`. Requires 0 <= index < size().
  const std::string& External(int32_t index) const { return external_[index]; }

  int32_t size() const { return static_cast<int32_t>(external_.size()); }
  bool empty() const { return external_.empty(); }
  const std::vector<std::string>& externals() const { return external_; }

  // Reserves room for `n` IDs.
  void Reserve(size_t n);

  // Builds a map whose index i is externals[i]. Duplicate IDs keep their first index.
  static IdMap FromExternals(std::vector<std::string> externals);

 private:
  std::vector<std::string> external_;
  absl::flat_hash_map<std::string, int32_t> index_;
};

}  // namespace recloop

#endif  // RECLOOP_ENGINE_ID_MAP_H_
