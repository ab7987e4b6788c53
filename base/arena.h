// Arena: owns copies of many small strings in a few large blocks, so that views into it stay
// valid and lie close together (data/id_interner.cc keeps each shard's distinct IDs in one, and
// compares hash-table keys there without touching the much larger input).
#ifndef RECLOOP_BASE_ARENA_H_
#define RECLOOP_BASE_ARENA_H_

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace recloop {

// Not thread-safe (one per thread or per shard). Views returned by Copy live as long as the
// arena; nothing is freed before it is destroyed.
class Arena {
 public:
  // A copy of `s` owned by the arena.
  std::string_view Copy(std::string_view s) {
    if (s.size() > capacity_ - used_) {
      capacity_ = std::max(kBlockBytes, s.size());
      blocks_.push_back(std::make_unique<char[]>(capacity_));
      used_ = 0;
    }
    char* p = blocks_.back().get() + used_;
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return std::string_view(p, s.size());
  }

 private:
  static constexpr size_t kBlockBytes = size_t{64} << 10;
  std::vector<std::unique_ptr<char[]>> blocks_;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

}  // namespace recloop

#endif  // RECLOOP_BASE_ARENA_H_
