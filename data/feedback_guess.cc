#include "data/feedback_guess.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/str_format.h"
#include "engine/status_macros.h"

namespace recloop {

FeedbackGuess GuessFeedback(const std::vector<float>& values) {
  FeedbackGuess guess;
  if (values.empty()) {
    guess.reason = "no values";
    return guess;
  }
  std::map<float, int64_t> counts;
  for (const float v : values) {
    const bool on_scale =
        v >= 0.0f && v <= 10.0f && std::fabs(v * 2.0f - std::round(v * 2.0f)) < 1e-4f;
    if (!on_scale) {
      guess.reason = absl::StrFormat("a value (%g) off a 0-10 rating scale of half steps", v);
      return guess;
    }
    // Few distinct keys by construction (at most 21), so the map stays tiny.
    ++counts[std::round(v * 2.0f) / 2.0f];
  }
  const float lowest = counts.begin()->first, highest = counts.rbegin()->first;
  if (counts.size() < 2) {
    guess.reason = absl::StrFormat("every value is %g", lowest);
    return guess;
  }
  auto mode = counts.begin();
  for (auto it = counts.begin(); it != counts.end(); ++it) {
    // On a tie the higher value: a count's mode at its minimum is strict.
    if (it->second >= mode->second) mode = it;
  }
  guess.reason = absl::StrFormat("values %g-%g, most common %g", lowest, highest, mode->first);
  if (mode->first > lowest) {
    guess.feedback = FeedbackKind::kExplicit;
  } else {
    guess.reason += " (the smallest: counts, not ratings)";
  }
  return guess;
}

absl::StatusOr<FeedbackGuess> GuessFileFeedback(const std::string& path, const ReadOptions& options,
                                                int64_t sample_bytes) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  // A missing or unreadable file: let the reader name the problem.
  const int64_t end =
      error ? sample_bytes : std::min<int64_t>(static_cast<int64_t>(size), sample_bytes);
  ASSIGN_OR_RETURN(const Interactions sample,
                   ReadInteractionsRange(path, options, FileRange{0, end}));
  return GuessFeedback(sample.value);
}

}  // namespace recloop
