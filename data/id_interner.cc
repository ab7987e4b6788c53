// Parallel ID numbering (id_interner.h).
#include "data/id_interner.h"

#include <atomic>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "tbb/parallel_for.h"

namespace recloop::reader_internal {

absl::Status IdMerger::Number() {
  std::atomic<bool> overflow{false};
  tbb::parallel_for(0, kShards, [&](int s) {
    if (!AssignSlots(s)) overflow = true;
  });
  const size_t num_chunks = columns_.size();
  std::vector<int64_t> base(num_chunks + 1, 0);
  for (size_t k = 0; k < num_chunks; ++k) {
    base[k + 1] = base[k];
    for (uint32_t n : columns_[k]->firsts) base[k + 1] += n;
  }
  if (overflow || base[num_chunks] > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError("too many distinct IDs");
  }
  in_order_.resize(static_cast<size_t>(base[num_chunks]));
  tbb::parallel_for(size_t{0}, num_chunks, [&](size_t k) {
    const IdColumn& c = *columns_[k];
    std::array<uint32_t, kShards> next{};
    int64_t g = base[k];
    for (uint8_t s : c.shard) {
      if (s == kSameAsPrevious) continue;
      const uint32_t r = c.slot[s][next[s]++];
      if ((r & kFirstBit) == 0) continue;
      global_[s][r & kSlotMask] = static_cast<int32_t>(g);
      in_order_[g++] = ids_[s][r & kSlotMask];
    }
  });
  // Replace the slots by global indices, shard by shard: each pass then looks up one shard's
  // small table, where a walk over the rows would jump between all of them.
  tbb::parallel_for(0, kShards, [&](int s) {
    const std::vector<int32_t>& global = global_[s];
    for (IdColumn* column : columns_) {
      for (uint32_t& r : column->slot[s]) r = static_cast<uint32_t>(global[r & kSlotMask]);
    }
  });
  return absl::OkStatus();
}

IdMap IdMerger::BuildMap() const {
  IdMap map;
  map.Reserve(in_order_.size());
  for (std::string_view id : in_order_) map.GetOrAdd(id);
  return map;
}

bool IdMerger::AssignSlots(int s) {
  absl::flat_hash_map<absl::string_view, uint32_t> slots;
  std::vector<std::string_view>& ids = ids_[s];
  Arena& arena = arenas_[s];
  for (IdColumn* column : columns_) {
    const std::string& stream = column->stream[s];
    std::vector<uint32_t>& out = column->slot[s];
    out.reserve(column->records[s]);
    uint32_t firsts = 0;
    const char* p = stream.data();
    const char* const end = p + stream.size();
    while (p != end) {
      size_t size = static_cast<uint8_t>(*p++);
      if (size == kLongId) {
        uint32_t long_size;
        std::memcpy(&long_size, p, 4);
        size = long_size;
        p += 4;
      }
      const std::string_view id(p, size);
      p += size;
      const auto it = slots.find(AsAbsl(id));
      if (it != slots.end()) {
        out.push_back(it->second);
        continue;
      }
      const uint32_t slot = static_cast<uint32_t>(ids.size());
      if (slot >= kSlotMask) return false;
      const std::string_view copy = arena.Copy(id);
      slots.emplace(AsAbsl(copy), slot);
      ids.push_back(copy);
      out.push_back(kFirstBit | slot);
      ++firsts;
    }
    column->firsts[s] = firsts;
    column->stream[s] = std::string();  // read once: give the memory back now
  }
  global_[s].assign(ids.size(), -1);
  return true;
}

}  // namespace recloop::reader_internal
