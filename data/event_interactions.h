// Event interactions: the events of an event store (data/event_store.h) turned into the
// interactions a model trains on. One conversion shared by `recloop train --events`, the
// server's background retrainer and its real-time fold-in, so that an event means the same
// thing everywhere:
//   explicit models: "rating" events with their value (the latest rating of an item wins);
//                    other event types carry no rating and are left out;
//   implicit models: the event's value if it has one, else its type's weight; the weights of
//                    one user's events on one item add up (negative weights are negative
//                    feedback).
#ifndef RECLOOP_DATA_EVENT_INTERACTIONS_H_
#define RECLOOP_DATA_EVENT_INTERACTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/event_store.h"
#include "data/interactions.h"
#include "engine/factor_model.h"

namespace recloop {

// The value an event contributes to a model of kind `feedback`, or nullopt if it contributes
// nothing (explicit models: every type but "rating"). Implicit models take a rating as the
// preference it expresses, RatingPreference(value, rating_neutral) (engine/factor_model.h): a
// low rating counts against the item; every other type its value, or its type's weight.
std::optional<float> EventValue(const Event& event, FeedbackKind feedback,
                                const TypeWeights& type_weights,
                                float rating_neutral = kDefaultRatingNeutral);

// The neutral rating with which `model` takes rating events: the one it was trained with, or
// kDefaultRatingNeutral.
inline float RatingNeutralOf(const ModelParams& model) {
  return model.rating_neutral > 0 ? model.rating_neutral : kDefaultRatingNeutral;
}

// How interactions of one (user, item) pair combine for `feedback`: kLast for explicit, kSum
// for implicit (the engine's DuplicateRuleFor, engine/fold_in.h, which every fold applies).
DuplicatePolicy EventDuplicatePolicy(FeedbackKind feedback);

// The last seq of `store` that `model` trained on: its lineage's events_through_seq if it was
// trained on this very store (EventStore::id()), else 0 (none of this store's events is in it).
int64_t EventsThroughSeq(const FactorModel& model, const EventStore& store);

struct EventDataOptions {
  FeedbackKind feedback = FeedbackKind::kImplicit;
  TypeWeights type_weights = DefaultTypeWeights();
  float rating_neutral = kDefaultRatingNeutral;  // implicit: how rating events count (EventValue)
  // The events read: after_seq < seq <= through_seq (through_seq 0 = up to the last one).
  int64_t after_seq = 0;
  int64_t through_seq = 0;
  // Carried forward: the training interactions of this model (its seen matrix), as if they
  // came before every event read, except those of the users in `dropped_users` (erased since
  // the model was trained). Null: events only.
  const FactorModel* base = nullptr;
  std::vector<std::string> dropped_users;
};

struct EventDataStats {
  int64_t events_read = 0;     // events in the seq range
  int64_t events_used = 0;     // of those, events that contributed a value
  int64_t base_interactions = 0;
  int64_t last_seq = 0;        // the largest seq read (0 if none)
};

// The interactions of `options`, deduplicated by EventDuplicatePolicy, with timestamps (base
// interactions have timestamp 0, so a later event's rating replaces them). Errors: the store's.
absl::StatusOr<Interactions> EventInteractions(const EventStore& store,
                                               const EventDataOptions& options,
                                               EventDataStats* stats = nullptr);

}  // namespace recloop

#endif  // RECLOOP_DATA_EVENT_INTERACTIONS_H_
