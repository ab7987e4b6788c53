#include "data/split.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <random>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/hash_mix.h"
#include "tbb/blocked_range.h"
#include "tbb/parallel_for.h"

namespace recloop {
namespace {

// Mix64 (base/hash_mix.h) turns (seed, user) into well-separated seeds so that neighbouring
// users do not get correlated Mersenne Twister streams.
uint64_t UserSeed(uint64_t seed, int32_t user) {
  return Mix64(Mix64(seed) ^ static_cast<uint64_t>(static_cast<uint32_t>(user)));
}

// Uniform in [0, 1) from the top 53 bits. Written out rather than std::uniform_real_distribution
// because the standard leaves that algorithm to the library, and a split must not change when
// the standard library does.
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// Marks exactly `k` of the `n` positions rows[0..n) in `is_test`, each k-subset equally likely
// (Knuth's selection sampling). Sequential, so it needs no scratch memory and consumes the RNG
// in a fixed order.
template <typename RowAt>
void SelectK(int64_t n, int64_t k, std::mt19937_64& rng, RowAt row_at,
             std::vector<uint8_t>& is_test) {
  int64_t needed = k;
  for (int64_t i = 0; i < n && needed > 0; ++i) {
    if (Uniform(rng) * static_cast<double>(n - i) < static_cast<double>(needed)) {
      is_test[row_at(i)] = 1;
      --needed;
    }
  }
}

std::string KindName(SplitSpec::Kind kind) {
  switch (kind) {
    case SplitSpec::Kind::kRandom:
      return "random";
    case SplitSpec::Kind::kUser:
      return "user";
    case SplitSpec::Kind::kUserLast:
      return "user-last";
    case SplitSpec::Kind::kTime:
      return "time";
  }
  return "unknown";
}

bool UsesFraction(SplitSpec::Kind kind) { return kind != SplitSpec::Kind::kUserLast; }

absl::Status ValidateSpec(const SplitSpec& spec) {
  if (UsesFraction(spec.kind)) {
    // Written so that NaN fails too.
    if (!(spec.fraction > 0.0 && spec.fraction < 1.0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "split ", KindName(spec.kind), ": fraction must be in (0, 1), got ", spec.fraction));
    }
  } else if (spec.count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("split user-last: count must be >= 1, got ", spec.count));
  }
  return absl::OkStatus();
}

// Rows grouped by user (counting sort, stable): user u's rows are order[start[u]..start[u+1]),
// in row order. Does not assume the input is sorted.
struct RowsByUser {
  std::vector<int64_t> start;
  std::vector<int64_t> order;
};

RowsByUser GroupByUser(const Interactions& data) {
  RowsByUser g;
  const int64_t n = data.size();
  g.start.assign(static_cast<size_t>(data.users.size()) + 1, 0);
  for (int64_t k = 0; k < n; ++k) ++g.start[data.user[k] + 1];
  std::partial_sum(g.start.begin(), g.start.end(), g.start.begin());
  g.order.resize(n);
  std::vector<int64_t> fill(g.start.begin(), g.start.end() - 1);
  for (int64_t k = 0; k < n; ++k) g.order[fill[data.user[k]]++] = k;
  return g;
}

void MarkRandom(const Interactions& data, double fraction, uint64_t seed,
                std::vector<uint8_t>& is_test) {
  const int64_t n = data.size();
  const int64_t k = std::llround(fraction * static_cast<double>(n));
  std::mt19937_64 rng(seed);
  SelectK(
      n, k, rng, [](int64_t i) { return i; }, is_test);
}

// Per-user kinds run in parallel over users; each user touches only its own rows of `is_test`
// and (for user:F) draws from its own RNG, so the result does not depend on the thread count.
void MarkUser(const Interactions& data, double fraction, uint64_t seed,
              std::vector<uint8_t>& is_test) {
  const RowsByUser g = GroupByUser(data);
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, data.users.size(), 256),
                    [&](const tbb::blocked_range<int32_t>& range) {
                      for (int32_t u = range.begin(); u != range.end(); ++u) {
                        const int64_t begin = g.start[u];
                        const int64_t n = g.start[u + 1] - begin;
                        // A user seen once keeps the interaction in train: sending it to test
                        // would make the user unknown to the model it is meant to evaluate.
                        if (n < 2) continue;
                        const int64_t k = std::clamp<int64_t>(
                            std::llround(fraction * static_cast<double>(n)), 1, n - 1);
                        std::mt19937_64 rng(UserSeed(seed, u));
                        SelectK(
                            n, k, rng, [&](int64_t i) { return g.order[begin + i]; }, is_test);
                      }
                    });
}

void MarkUserLast(const Interactions& data, int count, std::vector<uint8_t>& is_test) {
  RowsByUser g = GroupByUser(data);  // not const: each user's rows are reordered in place
  const auto& ts = data.timestamp;
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, data.users.size(), 256),
                    [&](const tbb::blocked_range<int32_t>& range) {
                      for (int32_t u = range.begin(); u != range.end(); ++u) {
                        const auto first = g.order.begin() + g.start[u];
                        const auto last = g.order.begin() + g.start[u + 1];
                        const int64_t n = last - first;
                        if (n < 2) continue;
                        const int64_t k = std::min<int64_t>(count, n - 1);
                        // The k latest by (timestamp, row), so that ties go by row order as
                        // the header promises; a selection is enough, no need to sort.
                        std::nth_element(first, last - k, last, [&](int64_t a, int64_t b) {
                          return ts[a] != ts[b] ? ts[a] < ts[b] : a < b;
                        });
                        for (auto it = last - k; it != last; ++it) is_test[*it] = 1;
                      }
                    });
}

void MarkTime(const Interactions& data, double fraction, std::vector<uint8_t>& is_test) {
  const int64_t n = data.size();
  const int64_t k = std::llround(fraction * static_cast<double>(n));
  if (k <= 0) return;
  const auto& ts = data.timestamp;
  // (timestamp, row) is a strict total order, so the k-th latest is a unique cut-off, and a
  // linear-time selection finds it without sorting all rows.
  const auto before = [&](int64_t a, int64_t b) { return ts[a] != ts[b] ? ts[a] < ts[b] : a < b; };
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::nth_element(order.begin(), order.begin() + (n - k), order.end(), before);
  const int64_t cut = order[n - k];
  for (int64_t r = 0; r < n; ++r) {
    if (!before(r, cut)) is_test[r] = 1;
  }
}

}  // namespace

absl::StatusOr<SplitSpec> ParseSplitSpec(std::string_view spec) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad split spec '", std::string(spec), "': ", std::string(why),
                     " (expected random:F, user:F, user-last:N or time:F)"));
  };
  const size_t colon = spec.find(':');
  if (colon == std::string_view::npos) return bad("missing ':'");
  const std::string_view kind = spec.substr(0, colon);
  const std::string_view arg = spec.substr(colon + 1);
  SplitSpec out;
  if (kind == "random") {
    out.kind = SplitSpec::Kind::kRandom;
  } else if (kind == "user") {
    out.kind = SplitSpec::Kind::kUser;
  } else if (kind == "user-last") {
    out.kind = SplitSpec::Kind::kUserLast;
  } else if (kind == "time") {
    out.kind = SplitSpec::Kind::kTime;
  } else {
    return bad(absl::StrCat("unknown kind '", std::string(kind), "'"));
  }
  if (arg.empty()) return bad("missing value after ':'");
  const char* const first = arg.data();
  const char* const last = arg.data() + arg.size();
  if (out.kind == SplitSpec::Kind::kUserLast) {
    int count = 0;
    const auto [end, ec] = std::from_chars(first, last, count);
    if (ec != std::errc() || end != last) {
      return bad(absl::StrCat("N must be an integer, got '", std::string(arg), "'"));
    }
    if (count < 1) return bad(absl::StrCat("N must be >= 1, got ", count));
    out.count = count;
  } else {
    double fraction = 0;
    const auto [end, ec] = std::from_chars(first, last, fraction);
    if (ec != std::errc() || end != last) {
      return bad(absl::StrCat("F must be a number, got '", std::string(arg), "'"));
    }
    if (!(fraction > 0.0 && fraction < 1.0)) {
      return bad(absl::StrCat("F must be in (0, 1), got '", std::string(arg), "'"));
    }
    out.fraction = fraction;
  }
  return out;
}

absl::StatusOr<SplitResult> Split(const Interactions& data, const SplitSpec& spec, uint64_t seed) {
  // The spec may have been built in code rather than parsed, so it is checked here too.
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  const bool needs_time =
      spec.kind == SplitSpec::Kind::kTime || spec.kind == SplitSpec::Kind::kUserLast;
  if (needs_time && !data.has_timestamps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "split ", KindName(spec.kind), " needs timestamps, and the interactions have none"));
  }

  std::vector<uint8_t> is_test(data.size(), 0);
  switch (spec.kind) {
    case SplitSpec::Kind::kRandom:
      MarkRandom(data, spec.fraction, seed, is_test);
      break;
    case SplitSpec::Kind::kUser:
      MarkUser(data, spec.fraction, seed, is_test);
      break;
    case SplitSpec::Kind::kUserLast:
      MarkUserLast(data, spec.count, is_test);
      break;
    case SplitSpec::Kind::kTime:
      MarkTime(data, spec.fraction, is_test);
      break;
  }

  const int64_t num_test = std::count(is_test.begin(), is_test.end(), uint8_t{1});
  std::vector<int64_t> train_rows, test_rows;
  train_rows.reserve(data.size() - num_test);
  test_rows.reserve(num_test);
  for (int64_t r = 0; r < data.size(); ++r) (is_test[r] ? test_rows : train_rows).push_back(r);

  SplitResult result;
  result.train = data.Subset(train_rows);
  result.train.Compact();
  result.test = data.Subset(test_rows);
  return result;
}

}  // namespace recloop
