// Guessing whether interactions are ratings or implicit feedback from their values, for
// `--feedback auto` (the default of `recloop train` and `tune`): a data team's file says what it
// holds by its values, and a wrong guess costs the ranking dearly (counts read as ratings make
// every value below the midpoint of their range a dislike).
#ifndef RECLOOP_DATA_FEEDBACK_GUESS_H_
#define RECLOOP_DATA_FEEDBACK_GUESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/reader.h"
#include "engine/factor_model.h"

namespace recloop {

struct FeedbackGuess {
  FeedbackKind feedback = FeedbackKind::kImplicit;
  std::string reason;  // one line for the user, e.g. "values 1-5 in steps of 0.5, most common 4"
};

// The rule: ratings (explicit) when every value is a multiple of 0.5 in [0, 10], there are at
// least two distinct values, and the most common value (the highest of a tie) is above the
// smallest one (a rating
// scale's mode sits in its middle or top; a count's, a play time's or an event weight's is its
// minimum). Otherwise implicit: counts, hours, weights, or no values at all. Pure.
FeedbackGuess GuessFeedback(const std::vector<float>& values);

// GuessFeedback on the rows of the first `sample_bytes` of `path` (the whole file if smaller),
// read with `options`. Errors: the reader's (NotFound, InvalidArgument naming FILE:LINE).
absl::StatusOr<FeedbackGuess> GuessFileFeedback(const std::string& path, const ReadOptions& options,
                                                int64_t sample_bytes = int64_t{16} << 20);

}  // namespace recloop

#endif  // RECLOOP_DATA_FEEDBACK_GUESS_H_
