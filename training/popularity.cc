#include "training/popularity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace recloop {

absl::Status ValidatePopularityOptions(const PopularityOptions& o) {
  if (!std::isfinite(o.half_life_days) || o.half_life_days < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("half_life_days must be finite and >= 0, got ", o.half_life_days));
  }
  return absl::OkStatus();
}

absl::StatusOr<Eigen::VectorXf> ItemPopularity(const Interactions& data,
                                               const PopularityOptions& o) {
  if (absl::Status s = ValidatePopularityOptions(o); !s.ok()) return s;
  const int32_t items = data.items.size();
  for (int32_t i : data.item) {
    if (i < 0 || i >= items) {
      return absl::InvalidArgumentError(
          absl::StrCat("interaction item index ", i, " is outside [0, ", items, ")"));
    }
  }
  if (o.half_life_days == 0) {
    // Counts stay exact in float up to 2^24 per item, far above any real catalogue's need.
    Eigen::VectorXf counts = Eigen::VectorXf::Zero(items);
    for (int32_t i : data.item) counts[i] += 1.0f;
    return counts;
  }
  if (!data.has_timestamps) {
    return absl::InvalidArgumentError(
        "time-decayed popularity (half_life_days > 0) needs timestamps; the data has none");
  }
  if (data.empty()) return Eigen::VectorXf::Zero(items);
  const int64_t t_max = *std::max_element(data.timestamp.begin(), data.timestamp.end());
  // Sums in double: millions of small weights would lose their tails in float.
  const double half_life_seconds = o.half_life_days * 86400.0;
  std::vector<double> sum(items, 0.0);
  for (int64_t r = 0; r < data.size(); ++r) {
    const double age = static_cast<double>(t_max - data.timestamp[r]);
    sum[data.item[r]] += std::exp2(-age / half_life_seconds);
  }
  Eigen::VectorXf out(items);
  for (int32_t i = 0; i < items; ++i) out[i] = static_cast<float>(sum[i]);
  return out;
}

}  // namespace recloop
