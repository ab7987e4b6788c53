#include "data/generator.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <numbers>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/hash_mix.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"
#include "tbb/parallel_invoke.h"

namespace recloop {
namespace {

// Each random quantity comes from its own stream, seeded from (options.seed, stream, index), so
// that a user's draws do not depend on which thread generates it or in what order.
enum Stream : uint64_t { kItemStream = 1, kCountStream = 2, kUserStream = 3 };

constexpr int64_t kBaseEpoch = 1500000000;         // 2017-07-14: plausible, far from 0
constexpr int64_t kStartSpread = 2 * 365 * 86400;  // users start within two years
constexpr uint32_t kMaxGap = 6 * 3600;             // seconds between a user's interactions
constexpr double kCountSigma = 1.0;                // log-normal spread of activity per user
constexpr double kLatentNoise = 0.25;              // norm of a vector's offset from its centroid
constexpr double kRatingScale = 1.5;               // rating = 3 + scale * affinity + noise
constexpr double kCountScale = 2.0;                // implicit count = 1 + Poisson(scale * aff.)
constexpr int kTries = 16;  // draws from one source before a duplicate-avoiding fallback

uint64_t StreamSeed(uint64_t seed, Stream stream, uint64_t index) {
  return Mix64(Mix64(Mix64(seed) ^ stream) ^ index);
}

// xoshiro256**: a 32-byte state that is seeded in four steps. A Mersenne Twister would spend more
// time seeding (one stream per user, 138K of them at scale) than drawing. The distributions are
// written out rather than taken from <random> because the standard leaves their algorithms to
// the library, and a generated store must be the same wherever it is built.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += kGoldenGamma;
      s = Mix64(seed);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n), n < 2^32 (multiply-shift; the bias of n / 2^32 is irrelevant here).
  uint32_t Below(uint32_t n) { return static_cast<uint32_t>(((Next() >> 32) * n) >> 32); }

  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();  // in (0, 1]: log stays finite
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }

  // Poisson(lambda) by multiplying uniforms (Knuth); fine for the small means used here.
  int Poisson(double lambda) {
    const double limit = std::exp(-std::min(lambda, 30.0));
    int k = 0;
    double p = Uniform();
    while (p > limit) {
      ++k;
      p *= Uniform();
    }
    return k;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
  double spare_ = 0;
  bool has_spare_ = false;
};

// Walker's alias table (Vose's construction) over a list of items: O(1) draws from a fixed
// discrete distribution, which matters at 20M draws where a binary search over 27K weights would
// dominate. A slot is packed into 12 bytes holding item IDs (not slot numbers), so a draw costs
// one cache miss: the tables outgrow L1 at scale and these loads are the generator's hot spot.
class AliasTable {
 public:
  AliasTable() = default;
  // items[k] has weight weights[k] (> 0); both of the same size, not empty.
  AliasTable(const std::vector<int32_t>& items, const std::vector<double>& weights) {
    const size_t n = items.size();
    std::vector<double> prob(n, 1.0);
    std::vector<size_t> alias(n);
    std::iota(alias.begin(), alias.end(), size_t{0});
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    // A steep Zipf law can underflow a whole cluster's weights to 0: it is drawn uniformly.
    const bool uniform = !(total > 0.0) || !std::isfinite(total);
    std::vector<double> scaled(n);
    std::vector<size_t> small, large;
    for (size_t k = 0; k < n; ++k) {
      scaled[k] = uniform ? 1.0 : weights[k] * static_cast<double>(n) / total;
      (scaled[k] < 1.0 ? small : large).push_back(k);
    }
    while (!small.empty() && !large.empty()) {
      const size_t s = small.back(), l = large.back();
      small.pop_back();
      prob[s] = scaled[s];
      alias[s] = l;
      scaled[l] -= 1.0 - scaled[s];
      if (scaled[l] < 1.0) {
        large.pop_back();
        small.push_back(l);
      }
    }
    // Whatever is left is 1 up to rounding: its alias is itself, so either outcome of the coin
    // gives the same item and its threshold does not matter.
    slots_.resize(n);
    for (size_t k = 0; k < n; ++k) {
      slots_[k] = {static_cast<uint32_t>(std::clamp(std::ldexp(prob[k], 32), 0.0, 4294967295.0)),
                   items[k], items[alias[k]]};
    }
  }

  int32_t Sample(Rng& rng) const {
    const uint64_t x = rng.Next();
    const Slot& slot = slots_[((x >> 32) * slots_.size()) >> 32];
    return static_cast<uint32_t>(x) < slot.threshold ? slot.item : slot.alias;
  }

 private:
  struct Slot {
    uint32_t threshold;  // accept `item` if the low 32 bits of the draw are below this
    int32_t item;
    int32_t alias;
  };
  std::vector<Slot> slots_;
};

std::vector<int32_t> Permutation(int32_t n, Rng& rng) {
  std::vector<int32_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  for (int32_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.Below(static_cast<uint32_t>(i) + 1)]);
  return p;
}

// A vector of norm about kLatentNoise around `centroid` (size rank).
void Perturb(const float* centroid, int rank, Rng& rng, float* out) {
  const double sigma = kLatentNoise / std::sqrt(static_cast<double>(rank));
  for (int r = 0; r < rank; ++r) out[r] = static_cast<float>(centroid[r] + sigma * rng.Normal());
}

// Splits `total` interactions over `users` users: at least 1 and at most `cap` each, in
// proportion to log-normal activity weights (a heavy-ish tail, as in real stores). Users whose
// share would exceed the cap are filled to it and the rest re-shared (water-filling); rounding
// leftovers go to the largest fractional parts, so the sum is exact.
std::vector<int64_t> AllocateCounts(int32_t users, int64_t total, int64_t cap, Rng& rng) {
  std::vector<int64_t> counts(users, 1);
  const int64_t room = cap - 1;  // beyond the guaranteed first interaction
  int64_t extra = total - users;
  if (extra <= 0 || room <= 0) return counts;
  std::vector<double> w(users);
  for (double& x : w) x = std::exp(kCountSigma * rng.Normal());
  std::vector<int32_t> order(users);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
  // Suffix sums from the light end: the capped users are a prefix of the heaviest.
  std::vector<double> rest_w(users + 1, 0.0);
  for (int32_t p = users - 1; p >= 0; --p) rest_w[p] = rest_w[p + 1] + w[order[p]];
  int32_t p = 0;
  for (; p < users; ++p) {
    const double share = static_cast<double>(extra) * w[order[p]] / rest_w[p];
    if (share <= static_cast<double>(room)) break;
    counts[order[p]] += room;
    extra -= room;
  }
  std::vector<std::pair<double, int32_t>> fractions;  // (fractional part, user)
  fractions.reserve(users - p);
  int64_t given = 0;
  for (int32_t q = p; q < users; ++q) {
    const int32_t u = order[q];
    const double share = static_cast<double>(extra) * w[u] / rest_w[p];
    const int64_t base = std::min<int64_t>(static_cast<int64_t>(share), room);
    counts[u] += base;
    given += base;
    fractions.emplace_back(share - static_cast<double>(base), u);
  }
  std::sort(fractions.begin(), fractions.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  // One pass suffices in exact arithmetic; the loop only guards against rounding.
  int64_t left = extra - given;
  while (left > 0) {
    const int64_t before = left;
    for (const auto& [frac, u] : fractions) {
      if (left == 0) break;
      if (counts[u] < cap) {
        ++counts[u];
        --left;
      }
    }
    if (left == before) break;  // no room left: cannot happen within validated options
  }
  // And against the opposite rounding (floors summing past `extra`): take from the smallest
  // fractional parts.
  for (auto it = fractions.rbegin(); left < 0 && it != fractions.rend(); ++it) {
    if (counts[it->second] > 1) {
      --counts[it->second];
      ++left;
    }
  }
  return counts;
}

// Everything about the items that the users' draws need; read-only while users are generated.
struct ItemModel {
  std::vector<int32_t> cluster;                // per item
  std::vector<float> centroids;                // clusters x rank, row-major, unit rows
  std::vector<float> vectors;                  // items x rank, row-major
  std::vector<std::vector<int32_t>> members;   // per cluster: its items
  std::vector<AliasTable> cluster_popularity;  // per cluster: over its members
  AliasTable all_popularity;                   // over all items
};

ItemModel BuildItemModel(const GeneratorOptions& o) {
  Rng rng(StreamSeed(o.seed, kItemStream, 0));
  ItemModel m;
  // Popularity rank is a random permutation, so that item index says nothing about it.
  std::vector<double> weight(o.items);
  const std::vector<int32_t> by_popularity = Permutation(o.items, rng);
  for (int32_t r = 0; r < o.items; ++r) {
    weight[by_popularity[r]] = std::pow(static_cast<double>(r) + 1.0, -o.zipf_exponent);
  }
  // Clusters are dealt round-robin over another permutation: every cluster gets items (so an
  // in-cluster draw is always possible), and popular and rare items alike.
  m.cluster.resize(o.items);
  m.members.resize(o.clusters);
  const std::vector<int32_t> dealt = Permutation(o.items, rng);
  for (int32_t p = 0; p < o.items; ++p) m.cluster[dealt[p]] = p % o.clusters;
  for (int32_t i = 0; i < o.items; ++i) m.members[m.cluster[i]].push_back(i);

  m.centroids.resize(static_cast<size_t>(o.clusters) * o.rank);
  for (int c = 0; c < o.clusters; ++c) {
    float* v = &m.centroids[static_cast<size_t>(c) * o.rank];
    double norm2 = 0;
    do {
      norm2 = 0;
      for (int r = 0; r < o.rank; ++r) {
        v[r] = static_cast<float>(rng.Normal());
        norm2 += static_cast<double>(v[r]) * v[r];
      }
    } while (norm2 == 0);
    const double inv = 1.0 / std::sqrt(norm2);
    for (int r = 0; r < o.rank; ++r) v[r] = static_cast<float>(v[r] * inv);
  }
  m.vectors.resize(static_cast<size_t>(o.items) * o.rank);
  for (int32_t i = 0; i < o.items; ++i) {
    Perturb(&m.centroids[static_cast<size_t>(m.cluster[i]) * o.rank], o.rank, rng,
            &m.vectors[static_cast<size_t>(i) * o.rank]);
  }

  std::vector<int32_t> all(o.items);
  std::iota(all.begin(), all.end(), 0);
  m.all_popularity = AliasTable(all, weight);
  m.cluster_popularity.reserve(o.clusters);
  for (int c = 0; c < o.clusters; ++c) {
    std::vector<double> w;
    w.reserve(m.members[c].size());
    for (int32_t i : m.members[c]) w.push_back(weight[i]);
    m.cluster_popularity.emplace_back(m.members[c], w);
  }
  return m;
}

// Per-thread scratch for generating one user at a time.
struct UserScratch {
  explicit UserScratch(int32_t items) : taken(items, 0) {}
  std::vector<uint8_t> taken;       // per item: already drawn for the current user
  std::vector<int64_t> timestamps;  // in draw order
  std::vector<uint64_t> keys;       // item << 32 | draw number: sorts by item, cheaply
  std::vector<float> vec;
};

// Draws an item the user does not have yet. Popularity-weighted draws are retried a few times on
// a duplicate; a heavy user can have taken most of the popular mass, so after that it falls back
// to uniform draws (from the cluster, then from all items) and finally a scan, which always
// succeeds because a user never wants more than half the items.
// Sets `from_cluster` when the item is known to be in the user's cluster, which saves the lookup.
int32_t DrawItem(const ItemModel& m, int32_t user_cluster, bool in_cluster, int32_t cluster_taken,
                 const std::vector<uint8_t>& taken, Rng& rng, bool& from_cluster) {
  from_cluster = in_cluster;
  if (in_cluster) {
    const std::vector<int32_t>& members = m.members[user_cluster];
    const AliasTable& table = m.cluster_popularity[user_cluster];
    for (int t = 0; t < kTries; ++t) {
      const int32_t i = table.Sample(rng);
      if (!taken[i]) return i;
    }
    if (cluster_taken < static_cast<int32_t>(members.size())) {
      for (int t = 0; t < kTries; ++t) {
        const int32_t i = members[rng.Below(static_cast<uint32_t>(members.size()))];
        if (!taken[i]) return i;
      }
    }
  }
  from_cluster = false;
  for (int t = 0; t < kTries; ++t) {
    const int32_t i = m.all_popularity.Sample(rng);
    if (!taken[i]) return i;
  }
  const auto n = static_cast<int32_t>(taken.size());
  for (int t = 0; t < kTries; ++t) {
    const auto i = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(n)));
    if (!taken[i]) return i;
  }
  const auto start = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(n)));
  for (int32_t k = 0; k < n; ++k) {
    const int32_t i = (start + k) % n;
    if (!taken[i]) return i;
  }
  return -1;  // unreachable: callers ask for at most ceil(items / 2) items per user
}

// Generates user `u`'s rows into out[offset, offset + count), sorted by item.
void GenerateUser(const GeneratorOptions& o, const ItemModel& m, int32_t u, int64_t count,
                  int64_t offset, UserScratch& scratch, int32_t& user_cluster_out,
                  Interactions& out) {
  Rng rng(StreamSeed(o.seed, kUserStream, static_cast<uint64_t>(u)));
  const auto cluster = static_cast<int32_t>(rng.Below(static_cast<uint32_t>(o.clusters)));
  user_cluster_out = cluster;
  scratch.vec.resize(o.rank);
  const float* user_vec = scratch.vec.data();
  Perturb(&m.centroids[static_cast<size_t>(cluster) * o.rank], o.rank, rng, scratch.vec.data());

  // First the items, in time order (timestamps increase with each draw).
  scratch.timestamps.clear();
  scratch.keys.clear();
  int64_t ts = kBaseEpoch + rng.Below(static_cast<uint32_t>(kStartSpread));
  int32_t cluster_taken = 0;
  for (int64_t j = 0; j < count; ++j) {
    const bool in_cluster = rng.Uniform() < o.in_cluster;
    bool from_cluster = false;
    const int32_t i =
        DrawItem(m, cluster, in_cluster, cluster_taken, scratch.taken, rng, from_cluster);
    scratch.taken[i] = 1;
    if (from_cluster || m.cluster[i] == cluster) ++cluster_taken;
    ts += 1 + rng.Below(kMaxGap);
    scratch.timestamps.push_back(ts);
    scratch.keys.push_back(static_cast<uint64_t>(i) << 32 | static_cast<uint64_t>(j));
  }
  std::sort(scratch.keys.begin(), scratch.keys.end());

  // Then the values, in item order. Item vectors are a random access into megabytes at scale,
  // so they are fetched a few rows ahead: without it this loop waits on memory most of the time.
  constexpr size_t kAhead = 8;
  const std::vector<uint64_t>& keys = scratch.keys;
  for (size_t k = 0; k < keys.size(); ++k) {
    if (k + kAhead < keys.size()) {
      __builtin_prefetch(&m.vectors[static_cast<size_t>(keys[k + kAhead] >> 32) * o.rank]);
    }
    const auto i = static_cast<int32_t>(keys[k] >> 32);
    const float* v = &m.vectors[static_cast<size_t>(i) * o.rank];
    double affinity = 0;
    for (int r = 0; r < o.rank; ++r) affinity += static_cast<double>(user_vec[r]) * v[r];
    float value;
    if (o.feedback == FeedbackKind::kExplicit) {
      const double raw = 3.0 + kRatingScale * affinity + o.noise * rng.Normal();
      value = static_cast<float>(std::round(std::clamp(raw, 1.0, 5.0)));
    } else {
      value = static_cast<float>(1 + rng.Poisson(kCountScale * std::max(0.0, affinity)));
    }
    const size_t at = static_cast<size_t>(offset) + k;
    out.user[at] = u;
    out.item[at] = i;
    out.value[at] = value;
    out.timestamp[at] = scratch.timestamps[keys[k] & 0xffffffffULL];
    scratch.taken[i] = 0;
  }
}

std::vector<std::string> Names(const char* prefix, int32_t n) {
  std::vector<std::string> names(n);
  for (int32_t k = 0; k < n; ++k) names[k] = absl::StrCat(prefix, k);
  return names;
}

}  // namespace

absl::Status ValidateGeneratorOptions(const GeneratorOptions& o) {
  const auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("generator: ", what));
  };
  if (o.users <= 0) return bad(absl::StrCat("users must be > 0, got ", o.users));
  if (o.items <= 0) return bad(absl::StrCat("items must be > 0, got ", o.items));
  if (o.interactions <= 0) {
    return bad(absl::StrCat("interactions must be > 0, got ", o.interactions));
  }
  if (o.interactions < o.users) {
    return bad(absl::StrCat("interactions must be >= users (every user gets at least one), got ",
                            o.interactions, " for ", o.users, " users"));
  }
  if (o.interactions > static_cast<int64_t>(o.users) * o.items / 2) {
    return bad(absl::StrCat("interactions must be at most users * items / 2 = ",
                            static_cast<int64_t>(o.users) * o.items / 2, ", got ", o.interactions));
  }
  if (o.clusters < 1 || o.clusters > o.items) {
    return bad(absl::StrCat("clusters must be in 1..items (", o.items, "), got ", o.clusters));
  }
  if (o.rank < 1) return bad(absl::StrCat("rank must be >= 1, got ", o.rank));
  if (!(o.zipf_exponent >= 0.0) || !std::isfinite(o.zipf_exponent)) {
    return bad(absl::StrCat("zipf_exponent must be finite and >= 0, got ", o.zipf_exponent));
  }
  if (!(o.in_cluster >= 0.0 && o.in_cluster <= 1.0)) {
    return bad(absl::StrCat("in_cluster must be in [0, 1], got ", o.in_cluster));
  }
  if (!(o.noise >= 0.0) || !std::isfinite(o.noise)) {
    return bad(absl::StrCat("noise must be finite and >= 0, got ", o.noise));
  }
  return absl::OkStatus();
}

absl::StatusOr<GeneratedStore> GenerateStore(const GeneratorOptions& options) {
  if (absl::Status s = ValidateGeneratorOptions(options); !s.ok()) return s;
  const GeneratorOptions& o = options;

  const ItemModel model = BuildItemModel(o);
  // ceil(items / 2): never more than half the catalogue (so duplicate avoidance stays cheap),
  // and still room for the users * items / 2 interactions that validation allows.
  const int64_t cap = (static_cast<int64_t>(o.items) + 1) / 2;
  Rng count_rng(StreamSeed(o.seed, kCountStream, 0));
  const std::vector<int64_t> counts = AllocateCounts(o.users, o.interactions, cap, count_rng);
  std::vector<int64_t> offsets(static_cast<size_t>(o.users) + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), offsets.begin() + 1);

  GeneratedStore store;
  Interactions& data = store.data;
  data.has_timestamps = true;
  // Zero-filling 20 bytes per interaction (400 MB at 20M) is a serial memset and page faults
  // per column: side by side they take half the time.
  const auto n = static_cast<size_t>(o.interactions);
  tbb::parallel_invoke([&] { data.users = IdMap::FromExternals(Names("u", o.users)); },
                       [&] { data.items = IdMap::FromExternals(Names("i", o.items)); },
                       [&] { data.user.resize(n); }, [&] { data.item.resize(n); },
                       [&] { data.value.resize(n); }, [&] { data.timestamp.resize(n); });
  store.item_cluster = model.cluster;
  store.user_cluster.resize(o.users);

  // Every user writes only its own slice of the output, so no synchronisation is needed.
  tbb::parallel_for(
      tbb::blocked_range<int32_t>(0, o.users, 64), [&](const tbb::blocked_range<int32_t>& range) {
        UserScratch scratch(o.items);
        for (int32_t u = range.begin(); u != range.end(); ++u) {
          GenerateUser(o, model, u, counts[u], offsets[u], scratch, store.user_cluster[u], data);
        }
      });
  return store;
}

namespace {

struct Department {
  const char* name;
  std::array<const char*, 6> nouns;
};

constexpr std::array<Department, 20> kDepartments = {{
    {"Kitchen", {"Teapot", "Skillet", "Cutting Board", "Espresso Cup", "Whisk", "Salad Bowl"}},
    {"Garden", {"Trowel", "Planter", "Watering Can", "Hammock", "Seed Kit", "Lantern"}},
    {"Books", {"Atlas", "Cookbook", "Novel", "Field Guide", "Poetry Collection", "Sketchbook"}},
    {"Music", {"Ukulele", "Vinyl Record", "Harmonica", "Metronome", "Headphones", "Songbook"}},
    {"Outdoor", {"Tent", "Backpack", "Compass", "Sleeping Bag", "Water Bottle", "Camp Stove"}},
    {"Toys", {"Puzzle", "Kite", "Building Set", "Yo-yo", "Plush Fox", "Spinning Top"}},
    {"Games", {"Chess Set", "Card Deck", "Board Game", "Dice Tower", "Domino Set", "Quiz Box"}},
    {"Tools", {"Hammer", "Screwdriver Set", "Tape Measure", "Spirit Level", "Wrench", "Toolbox"}},
    {"Beauty", {"Soap", "Hand Cream", "Comb", "Bath Salts", "Lip Balm", "Face Mask"}},
    {"Sports", {"Yoga Mat", "Football", "Jump Rope", "Tennis Racket", "Dumbbell", "Bike Bell"}},
    {"Office", {"Notebook", "Fountain Pen", "Desk Lamp", "Stapler", "Planner", "Paper Tray"}},
    {"Pets", {"Dog Bowl", "Cat Toy", "Leash", "Pet Bed", "Bird Feeder", "Aquarium Plant"}},
    {"Baby", {"Rattle", "Blanket", "Bib", "Mobile", "Teether", "Storybook"}},
    {"Travel", {"Suitcase", "Neck Pillow", "Passport Wallet", "Packing Cube", "Travel Mug",
                "Luggage Tag"}},
    {"Home", {"Candle", "Cushion", "Vase", "Picture Frame", "Throw Blanket", "Wall Clock"}},
    {"Grocery", {"Olive Oil", "Tea Blend", "Coffee Beans", "Honey", "Spice Mix", "Granola"}},
    {"Art", {"Watercolour Set", "Easel", "Brush Set", "Canvas", "Charcoal Pencils", "Clay"}},
    {"Electronics", {"Charger", "Speaker", "Keyboard", "Webcam", "Power Bank", "Smart Plug"}},
    {"Fashion", {"Scarf", "Wool Hat", "Sneakers", "Belt", "Sunglasses", "Tote Bag"}},
    {"Film", {"Documentary", "Thriller", "Comedy", "Western", "Musical", "Animated Feature"}},
}};

constexpr std::array<const char*, 16> kAdjectives = {
    "Amber", "Brass", "Cedar", "Copper", "Crimson", "Dusky", "Golden", "Indigo",
    "Ivory", "Linen", "Maple", "Olive",  "Silver", "Slate",  "Walnut", "Willow"};

}  // namespace

std::string GeneratedDepartment(int32_t cluster) {
  if (cluster >= 0 && cluster < static_cast<int32_t>(kDepartments.size())) {
    return kDepartments[cluster].name;
  }
  return absl::StrCat("Department ", cluster);
}

std::string GeneratedItemTitle(int32_t item, int32_t cluster) {
  const auto& nouns = kDepartments[static_cast<size_t>(std::abs(cluster)) % kDepartments.size()].nouns;
  const auto i = static_cast<uint32_t>(item);
  return absl::StrCat(kAdjectives[i % kAdjectives.size()], " ",
                      nouns[(i / kAdjectives.size()) % nouns.size()]);
}

}  // namespace recloop
