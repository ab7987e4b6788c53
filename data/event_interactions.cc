#include "data/event_interactions.h"

#include <algorithm>

#include "engine/fold_in.h"
#include "engine/status_macros.h"

namespace recloop {

std::optional<float> EventValue(const Event& e, FeedbackKind feedback,
                                const TypeWeights& type_weights, float rating_neutral) {
  if (feedback == FeedbackKind::kExplicit) {
    if (e.type != "rating" || !e.value) return std::nullopt;
    return *e.value;
  }
  if (e.type == "rating" && e.value) return RatingPreference(*e.value, rating_neutral);
  if (e.value) return *e.value;
  const auto it = type_weights.find(e.type);
  return it == type_weights.end() ? 1.0f : it->second;
}

int64_t EventsThroughSeq(const FactorModel& model, const EventStore& store) {
  return model.lineage.events_store_id == store.id() ? model.lineage.events_through_seq : 0;
}

DuplicatePolicy EventDuplicatePolicy(FeedbackKind feedback) {
  // The engine's rule, so that training and every fold combine repeated events alike.
  return DuplicateRuleFor(feedback) == DuplicateRule::kLast ? DuplicatePolicy::kLast
                                                            : DuplicatePolicy::kSum;
}

absl::StatusOr<Interactions> EventInteractions(const EventStore& store,
                                               const EventDataOptions& options,
                                               EventDataStats* stats) {
  EventDataStats local;
  EventDataStats& st = stats != nullptr ? *stats : local;
  st = EventDataStats{};
  Interactions data;
  data.has_timestamps = true;
  if (const FactorModel* base = options.base; base != nullptr) {
    std::vector<std::string> dropped = options.dropped_users;
    std::sort(dropped.begin(), dropped.end());
    for (int32_t u = 0; u < base->num_users() && u < base->seen.rows(); ++u) {
      const std::string& id = base->users.External(u);
      if (std::binary_search(dropped.begin(), dropped.end(), id)) continue;
      const auto items = base->seen.RowIndices(u);
      const auto values = base->seen.RowValues(u);
      if (items.empty()) continue;
      const int32_t du = data.users.GetOrAdd(id);
      for (size_t j = 0; j < items.size(); ++j) {
        data.Add(du, data.items.GetOrAdd(base->items.External(items[j])), values[j], 0);
      }
      st.base_interactions += static_cast<int64_t>(items.size());
    }
  }
  RETURN_IF_ERROR(store.ForEach(
      options.after_seq,
      [&](const StoredEvent& se) {
        ++st.events_read;
        st.last_seq = se.seq;
        const auto value = EventValue(se.event, options.feedback, options.type_weights,
                                      options.rating_neutral);
        if (!value) return true;
        ++st.events_used;
        data.Add(data.users.GetOrAdd(se.event.user), data.items.GetOrAdd(se.event.item), *value,
                 se.event.timestamp);
        return true;
      },
      options.through_seq));
  RETURN_IF_ERROR(data.Deduplicate(EventDuplicatePolicy(options.feedback)).status());
  return data;
}

}  // namespace recloop
