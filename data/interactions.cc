#include "data/interactions.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "tbb/parallel_for.h"

namespace recloop {

absl::StatusOr<DuplicatePolicy> ParseDuplicatePolicy(std::string_view s) {
  if (s == "last") return DuplicatePolicy::kLast;
  if (s == "sum") return DuplicatePolicy::kSum;
  if (s == "error") return DuplicatePolicy::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown duplicate policy '", std::string(s), "' (expected last, sum or error)"));
}

void Interactions::Reserve(size_t n) {
  user.reserve(n);
  item.reserve(n);
  value.reserve(n);
  timestamp.reserve(n);
}

void Interactions::Add(int32_t u, int32_t i, float v, int64_t ts) {
  user.push_back(u);
  item.push_back(i);
  value.push_back(v);
  timestamp.push_back(ts);
}

absl::StatusOr<int64_t> Interactions::Deduplicate(DuplicatePolicy policy) {
  const int64_t n = size();
  const int32_t num_users = users.size();
  // Bucket row numbers by user (counting sort, stable), then sort each user's rows by
  // (item, timestamp, row) so that "last" is the final row of each run.
  std::vector<int64_t> start(num_users + 1, 0);
  for (int64_t k = 0; k < n; ++k) ++start[user[k] + 1];
  std::partial_sum(start.begin(), start.end(), start.begin());
  std::vector<int64_t> order(n);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t k = 0; k < n; ++k) order[fill[user[k]]++] = k;
  }
  tbb::parallel_for(tbb::blocked_range<int32_t>(0, num_users, 512), [&](const auto& range) {
    for (int32_t u = range.begin(); u != range.end(); ++u) {
      std::sort(order.begin() + start[u], order.begin() + start[u + 1],
                [&](int64_t a, int64_t b) {
                  if (item[a] != item[b]) return item[a] < item[b];
                  if (timestamp[a] != timestamp[b]) return timestamp[a] < timestamp[b];
                  return a < b;
                });
    }
  });
  std::vector<int32_t> new_user, new_item;
  std::vector<float> new_value;
  std::vector<int64_t> new_ts;
  new_user.reserve(n);
  new_item.reserve(n);
  new_value.reserve(n);
  new_ts.reserve(n);
  for (int64_t p = 0; p < n;) {
    const int64_t k = order[p];
    int64_t q = p + 1;
    while (q < n && user[order[q]] == user[k] && item[order[q]] == item[k]) ++q;
    if (q - p > 1 && policy == DuplicatePolicy::kError) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate interaction of user '",
                                                     users.External(user[k]), "' with item '",
                                                     items.External(item[k]), "'"));
    }
    const int64_t last = order[q - 1];
    float v = value[last];
    if (policy == DuplicatePolicy::kSum) {
      double sum = 0;
      for (int64_t r = p; r < q; ++r) sum += value[order[r]];
      v = static_cast<float>(sum);
    }
    new_user.push_back(user[k]);
    new_item.push_back(item[k]);
    new_value.push_back(v);
    new_ts.push_back(timestamp[last]);
    p = q;
  }
  const int64_t merged = n - static_cast<int64_t>(new_user.size());
  user = std::move(new_user);
  item = std::move(new_item);
  value = std::move(new_value);
  timestamp = std::move(new_ts);
  return merged;
}

void Interactions::Compact() {
  std::vector<int32_t> user_map(users.size(), -1), item_map(items.size(), -1);
  IdMap new_users, new_items;
  for (int64_t k = 0; k < size(); ++k) {
    int32_t& u = user_map[user[k]];
    if (u < 0) u = new_users.GetOrAdd(users.External(user[k]));
    user[k] = u;
    int32_t& i = item_map[item[k]];
    if (i < 0) i = new_items.GetOrAdd(items.External(item[k]));
    item[k] = i;
  }
  users = std::move(new_users);
  items = std::move(new_items);
}

Interactions Interactions::Subset(const std::vector<int64_t>& rows) const {
  Interactions out;
  out.users = users;
  out.items = items;
  out.has_timestamps = has_timestamps;
  out.Reserve(rows.size());
  for (int64_t k : rows) out.Add(user[k], item[k], value[k], timestamp[k]);
  return out;
}

CsrMatrix Interactions::ToUserItemMatrix() const {
  return CsrMatrix::FromTriplets(users.size(), items.size(), user, item, value);
}

}  // namespace recloop
