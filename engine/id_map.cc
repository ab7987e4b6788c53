#include "engine/id_map.h"

#include <utility>

#include "absl/strings/string_view.h"

namespace recloop {
namespace {

// Debian's Abseil is built with its own absl::string_view (not an alias of std::string_view).
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

int32_t IdMap::GetOrAdd(std::string_view id) {
  auto it = index_.find(AsAbsl(id));
  if (it != index_.end()) return it->second;
  const int32_t next = size();
  external_.emplace_back(id);
  index_.emplace(external_.back(), next);
  return next;
}

std::optional<int32_t> IdMap::Find(std::string_view id) const {
  auto it = index_.find(AsAbsl(id));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void IdMap::Reserve(size_t n) {
  external_.reserve(n);
  index_.reserve(n);
}

IdMap IdMap::FromExternals(std::vector<std::string> externals) {
  IdMap map;
  map.Reserve(externals.size());
  for (auto& e : externals) map.GetOrAdd(e);
  return map;
}

}  // namespace recloop
