// Numbering the IDs of an interaction file by first appearance, in parallel (internal to
// data/: reader.cc and row_parser.cc use it). The result does not depend on the number of
// threads or chunks.
//
// IDs are numbered without a shared table that threads would fight over, in three steps:
//  1. Parsing a chunk sends each row's ID, by hash, to one of kShards streams (per chunk).
//  2. Each shard, in parallel, reads its streams chunk by chunk into a table of its own IDs, so
//     it meets every ID's first occurrence in the file first, and gives each record its slot.
//  3. Walking each chunk's rows in order, a prefix sum over first occurrences numbers the IDs.
// Each shard's table holds its distinct IDs once (a 64th of them: it stays in cache), and every
// pass reads and writes its arrays sequentially: with a million users in random order, a
// per-row lookup in one global table would be a cache miss per row.
#ifndef RECLOOP_DATA_ID_INTERNER_H_
#define RECLOOP_DATA_ID_INTERNER_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "base/arena.h"
#include "data/format_detect.h"
#include "engine/id_map.h"

namespace recloop::reader_internal {

constexpr int kShardBits = 6;
constexpr int kShards = 1 << kShardBits;
// Per row, in place of a shard: the row has the same ID as the row before it in the chunk.
// Files grouped by user repeat the user row after row; such rows skip the streams.
constexpr uint8_t kSameAsPrevious = 0xFF;
// A record's slot in its shard, with this bit set if the record is the ID's first occurrence.
constexpr uint32_t kFirstBit = uint32_t{1} << 31;
constexpr uint32_t kSlotMask = kFirstBit - 1;
// Stream records: [length: 1 byte, or 0xFF and 4 bytes][the ID's bytes].
constexpr uint8_t kLongId = 0xFF;

inline int ShardOf(std::string_view id) {
  const size_t hash = absl::Hash<absl::string_view>{}(AsAbsl(id));
  return static_cast<int>(static_cast<uint64_t>(hash) >> (64 - kShardBits));
}

// The IDs of one column (users or items) of a chunk's accepted rows. Filled by the one thread
// that parses the chunk.
struct IdColumn {
  // Adds the ID of the next accepted row.
  void Add(std::string_view id) {
    if (have_last && id == last) {
      shard.push_back(kSameAsPrevious);
      return;
    }
    last = id;
    have_last = true;
    const int s = ShardOf(id);
    shard.push_back(static_cast<uint8_t>(s));
    ++records[s];
    std::string& out = stream[s];
    if (id.size() < kLongId) {
      out.push_back(static_cast<char>(id.size()));
    } else {
      const uint32_t size = static_cast<uint32_t>(id.size());
      char header[5];
      header[0] = static_cast<char>(kLongId);
      std::memcpy(header + 1, &size, 4);
      out.append(header, 5);
    }
    out.append(id.data(), id.size());
  }

  std::vector<uint8_t> shard;               // per row: the shard of its ID, or kSameAsPrevious
  std::array<std::string, kShards> stream;  // per shard: the records of its rows, in row order
  std::array<uint32_t, kShards> records{};  // per shard: the number of records
  // Set by step 2, per shard: per record its slot (with kFirstBit), replaced by its global index
  // at the end of step 3; and the count of first occurrences.
  std::array<std::vector<uint32_t>, kShards> slot;
  std::array<uint32_t, kShards> firsts{};
  // Forgets the last ID, whose bytes are about to change (an unquoted CSV record's fields live
  // in the splitter's storage, which the next record overwrites).
  void ForgetLast() { have_last = false; }

  std::string_view last;  // the previous row's ID, while have_last
  bool have_last = false;
};

// Numbers the IDs of one column of all chunks (given in chunk order) by first appearance in the
// file. Number runs its steps in parallel (oneTBB); the other methods are const and may run
// concurrently once Number has returned.
class IdMerger {
 public:
  explicit IdMerger(std::vector<IdColumn*> columns) : columns_(std::move(columns)) {}

  // Steps 2 and 3 above. Fails if there are too many IDs.
  absl::Status Number();

  // After Number: the number of distinct IDs.
  int32_t size() const { return static_cast<int32_t>(in_order_.size()); }

  // After Number: the ID map. Does not use the columns, so it can run while they are read (and
  // freed) by a Walker: IdMap has no parallel construction, and this serial step's cost grows
  // with the number of distinct IDs.
  IdMap BuildMap() const;

  // After Number: the global indices of chunk k's rows, row by row.
  class Walker {
   public:
    Walker(const IdMerger& merger, size_t k) : column_(*merger.columns_[k]) {}
    int32_t Next() {
      const uint8_t s = column_.shard[row_++];
      if (s != kSameAsPrevious) last_ = static_cast<int32_t>(column_.slot[s][next_[s]++]);
      return last_;
    }

   private:
    const IdColumn& column_;
    std::array<uint32_t, kShards> next_{};
    size_t row_ = 0;
    int32_t last_ = -1;  // a chunk's first row is never kSameAsPrevious
  };

 private:
  // Gives shard s's IDs slots in order of first appearance, and every record of the shard its
  // slot. Returns false if the shard has more IDs than a slot can address.
  bool AssignSlots(int s);

  std::vector<IdColumn*> columns_;
  std::array<Arena, kShards> arenas_;
  std::array<std::vector<std::string_view>, kShards> ids_;  // per shard slot: the ID
  std::array<std::vector<int32_t>, kShards> global_;        // per shard slot: global index
  std::vector<std::string_view> in_order_;                  // global index: the ID
};

}  // namespace recloop::reader_internal

#endif  // RECLOOP_DATA_ID_INTERNER_H_
