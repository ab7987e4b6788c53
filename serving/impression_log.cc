#include "serving/impression_log.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "serving/json_codec.h"

namespace recloop {
namespace {

int64_t Millis(ImpressionLog::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string Label(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

ImpressionLog::ImpressionLog(EventStore* store, ImpressionLogOptions options, Logger* log)
    : store_(store), options_(options), log_(log) {
  if (store_ != nullptr) writer_ = std::thread([this] { WriterLoop(); });
}

ImpressionLog::~ImpressionLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  Flush();
}

std::string ImpressionLog::NewId() {
  thread_local std::mt19937_64 rng([] {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  }());
  return absl::StrFormat("%016x%016x", rng(), rng());
}

bool ImpressionLog::Credited(std::string_view type) {
  return type == "click" || type == "cart" || type == "purchase";
}

void ImpressionLog::Record(const std::string& id, ServedList list, Clock::time_point at) {
  if (!options_.record) return;
  thread_local std::mt19937_64 sampler(std::random_device{}());
  const bool sampled = options_.sample_rate >= 1.0 || std::uniform_real_distribution<double>(
                                                          0.0, 1.0)(sampler) < options_.sample_rate;
  auto recent = std::make_shared<Recent>();
  recent->id = id;
  recent->at = at;
  recent->list = std::move(list);
  std::lock_guard<std::mutex> lock(mu_);
  const ServedList& l = recent->list;
  ++served_[{l.model_version, l.variant}];
  if (store_ != nullptr) {
    if (!sampled) {
      ++sampled_out_;
    } else if (static_cast<int64_t>(pending_.size() + pending_attributions_.size()) >=
               options_.max_queue) {
      ++dropped_;
    } else {
      pending_.push_back(recent);
    }
  }
  by_id_[recent->id] = recent;
  if (!l.user.empty()) {
    auto& mine = by_user_[l.user];  // oldest first
    if (static_cast<int>(mine.size()) >= options_.max_recent_per_user) mine.erase(mine.begin());
    mine.push_back(recent);
  }
  order_.push_back(std::move(recent));
  while (static_cast<int64_t>(order_.size()) > options_.max_recent) {
    const std::shared_ptr<Recent> old = std::move(order_.front());
    order_.pop_front();
    by_id_.erase(old->id);
    if (auto it = by_user_.find(old->list.user); it != by_user_.end()) {
      auto& mine = it->second;
      mine.erase(std::remove(mine.begin(), mine.end(), old), mine.end());
      if (mine.empty()) by_user_.erase(it);
    }
  }
}

std::optional<int> ImpressionLog::CreditLocked(Recent& r, const std::string& item,
                                               const std::string& type, Clock::time_point at) {
  const auto& items = r.list.items;
  const auto found = std::find_if(items.begin(), items.end(),
                                  [&](const auto& entry) { return entry.first == item; });
  if (found == items.end()) return std::nullopt;
  if (!r.credited.insert(absl::StrCat(item, "\t", type)).second) return std::nullopt;
  const int position = static_cast<int>(found - items.begin()) + 1;
  ++credited_[{r.list.model_version, r.list.variant, type}];
  ++by_position_[{position, type}];
  if (store_ != nullptr) {
    if (static_cast<int64_t>(pending_.size() + pending_attributions_.size()) >=
        options_.max_queue) {
      ++dropped_;
    } else {
      pending_attributions_.push_back(AttributionRecord{r.id, r.list.user, item, type, position,
                                                        r.list.model_version, r.list.variant,
                                                        Millis(at)});
    }
  }
  return position;
}

std::optional<int> ImpressionLog::Attribute(const std::string& user, const std::string& item,
                                            const std::string& type,
                                            const std::string& recommendation_id,
                                            Clock::time_point at) {
  if (!Credited(type)) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  if (!recommendation_id.empty()) {
    const auto it = by_id_.find(recommendation_id);
    std::optional<int> position;
    if (it != by_id_.end()) position = CreditLocked(*it->second, item, type, at);
    // An id we do not know, or a list without the item: counted, never guessed at.
    if (!position &&
        (it == by_id_.end() || !it->second->credited.contains(absl::StrCat(item, "\t", type)))) {
      ++unmatched_[type];
    }
    return position;
  }
  const auto mine = by_user_.find(user);
  if (mine == by_user_.end()) return std::nullopt;
  for (auto it = mine->second.rbegin(); it != mine->second.rend(); ++it) {  // latest first
    const std::shared_ptr<Recent>& r = *it;
    if (at - r->at > options_.attribution_window) break;
    const auto& items = r->list.items;
    if (std::none_of(items.begin(), items.end(),
                     [&](const auto& entry) { return entry.first == item; })) {
      continue;
    }
    return CreditLocked(*r, item, type, at);  // the latest list with the item, credited or not
  }
  return std::nullopt;
}

void ImpressionLog::Flush() {
  std::lock_guard<std::mutex> flushing(flush_mu_);
  std::vector<std::shared_ptr<const Recent>> waiting;
  std::vector<AttributionRecord> attributions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting.swap(pending_);
    attributions.swap(pending_attributions_);
  }
  if (store_ == nullptr || (waiting.empty() && attributions.empty())) return;
  // Rows are made here, off the request path: an entry's fields other than `credited` never
  // change once recorded, so they are read without the lock.
  std::vector<ImpressionRecord> impressions;
  impressions.reserve(waiting.size());
  for (const auto& r : waiting) {
    const ServedList& l = r->list;
    impressions.push_back(ImpressionRecord{r->id, l.user, l.route, l.model_version, l.variant,
                                           Millis(r->at), ItemSourcePairsJson(l.items)});
  }
  const absl::Status s = store_->AppendImpressions(impressions, attributions);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    stored_ += static_cast<int64_t>(impressions.size());
  } else {
    write_errors_ += static_cast<int64_t>(impressions.size() + attributions.size());
    log_->Warning("impressions: %d impression(s) and %d attribution(s) not stored: %s",
                  static_cast<int>(impressions.size()), static_cast<int>(attributions.size()),
                  std::string(s.message()));
  }
}

void ImpressionLog::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.flush_interval, [this] { return stop_; });
    lock.unlock();
    Flush();
    lock.lock();
  }
}

std::map<std::string, ImpressionLog::VariantCounts> ImpressionLog::CountsByVariant() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, VariantCounts> out;
  for (const auto& [key, n] : served_) out[key.second].impressions += n;
  for (const auto& [key, n] : credited_) out[std::get<1>(key)].credited[std::get<2>(key)] += n;
  return out;
}

std::string ImpressionLog::MetricsText() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  absl::StrAppend(&out,
                  "# HELP recloop_impressions_served_total Lists served with a recommendation_id\n"
                  "# TYPE recloop_impressions_served_total counter\n");
  for (const auto& [key, n] : served_) {
    absl::StrAppend(&out, "recloop_impressions_served_total{model_version=\"", Label(key.first),
                    "\",variant=\"", Label(key.second), "\"} ", n, "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP recloop_impressions_total Impressions by what became of them in the event store\n"
      "# TYPE recloop_impressions_total counter\n",
      "recloop_impressions_total{outcome=\"stored\"} ", stored_, "\n",
      "recloop_impressions_total{outcome=\"sampled_out\"} ", sampled_out_, "\n",
      "recloop_impressions_total{outcome=\"dropped_queue_full\"} ", dropped_, "\n",
      "recloop_impressions_total{outcome=\"write_failed\"} ", write_errors_, "\n");
  absl::StrAppend(&out,
                  "# HELP recloop_attributed_events_total Clicks, carts and purchases credited to "
                  "a list they were shown in\n"
                  "# TYPE recloop_attributed_events_total counter\n");
  for (const auto& [key, n] : credited_) {
    absl::StrAppend(&out, "recloop_attributed_events_total{model_version=\"",
                    Label(std::get<0>(key)), "\",variant=\"", Label(std::get<1>(key)), "\",type=\"",
                    Label(std::get<2>(key)), "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP recloop_attributed_events_by_position_total Credited events by the "
                  "item's position in its list (1 = first)\n"
                  "# TYPE recloop_attributed_events_by_position_total counter\n");
  for (const auto& [key, n] : by_position_) {
    absl::StrAppend(&out, "recloop_attributed_events_by_position_total{position=\"", key.first,
                    "\",type=\"", Label(key.second), "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP recloop_attribution_unmatched_total Events naming a recommendation_id "
                  "that is unknown or whose list lacks the item\n"
                  "# TYPE recloop_attribution_unmatched_total counter\n");
  for (const auto& [type, n] : unmatched_) {
    absl::StrAppend(&out, "recloop_attribution_unmatched_total{type=\"", Label(type), "\"} ", n,
                    "\n");
  }
  return out;
}

}  // namespace recloop
