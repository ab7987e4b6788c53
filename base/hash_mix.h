// Integer mixing shared by every seeded stream in recloop: SplitMix64's finaliser (Steele,
// Lea and Flood 2014), a bijection on 64-bit integers that spreads every input bit over the
// output. Seeds derived with it are the same on every platform, unlike <random>'s
// distributions, so a generated store, a split or a training run replays from its seed.
#ifndef RECLOOP_BASE_HASH_MIX_H_
#define RECLOOP_BASE_HASH_MIX_H_

#include <cstdint>

namespace recloop {

// The golden-ratio increment of SplitMix64's state.
inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// SplitMix64's output function applied to x + kGoldenGamma. Pure; thread-safe.
constexpr uint64_t Mix64(uint64_t x) {
  x += kGoldenGamma;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// SplitMix64 as a generator: each Next() advances the state by kGoldenGamma and returns the
// mixed state. Not thread-safe (one per thread or per stream).
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(uint64_t seed) : state_(seed) {}
  constexpr uint64_t Next() {
    const uint64_t out = Mix64(state_);
    state_ += kGoldenGamma;
    return out;
  }
  // A double uniform in [0, 1) from the top 53 bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace recloop

#endif  // RECLOOP_BASE_HASH_MIX_H_
