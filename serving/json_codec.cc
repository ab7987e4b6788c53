#include "serving/json_codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace recloop {
namespace {

// Keys keep the order they are written in.
using json = nlohmann::ordered_json;

std::string Dump(const json& j) {
  // IDs come from clients and files: invalid UTF-8 is replaced rather than thrown on.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

json OutcomeObject(const RetrainOutcome& o) {
  json out;
  out["outcome"] = o.outcome;
  if (!o.version.empty()) out["version"] = o.version;
  out["parent_version"] = o.parent_version;
  out["message"] = o.message;
  out["new_events"] = o.new_events;
  out["seconds"] = o.seconds;
  out["finished"] = o.finished_utc;
  if (!o.gate.metric.empty()) {
    out["gate"] = {{"metric", o.gate.metric},
                   {"candidate", o.gate.candidate},
                   {"live", o.gate.live},
                   {"skipped", o.gate.skipped},
                   {"passed", o.gate.passed}};
  }
  return out;
}

// Appends a list response's JSON straight to one string, without building a DOM (the hot path
// of every list request: a DOM costs an allocation per key and value). The structure is fixed
// and written here; every string goes through nlohmann's own escaping (its serializer, with the
// same replacement of invalid UTF-8 as Dump), numbers through std::to_chars (the shortest text
// that reads back as the same double; non-finite ones as null, as Dump writes them).
class ListWriter {
 public:
  explicit ListWriter(std::string* out) : out_(out) {}

  void Raw(std::string_view text) { out_->append(text); }
  void String(std::string_view s) {
    // The serializer writes a JSON string value, quoted and escaped, into the scratch string it
    // was made with; value, scratch and serializer are per thread and keep their capacity, so a
    // warm thread allocates nothing here.
    thread_local std::string scratch;
    thread_local json value = json::string_t();
    thread_local nlohmann::detail::serializer<json> escaper(
        nlohmann::detail::output_adapter<char>(scratch), ' ', json::error_handler_t::replace);
    value.get_ref<json::string_t&>().assign(s);
    scratch.clear();
    escaper.dump(value, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
    out_->append(scratch);
  }
  void Number(float v) {
    if (!std::isfinite(v)) return Raw("null");
    char buf[32];
    // As a double, as the DOM wrote it: a client reading the text as a double gets exactly the
    // float's value.
    const auto end = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(v)).ptr;
    out_->append(buf, end);
    // A whole number keeps a fraction ("0.0", not "0"), as the DOM writes floats: a typed
    // client reads a float either way.
    if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e'; }) == end) {
      out_->append(".0");
    }
  }
  void Key(std::string_view key) {  // `key` is one of ours: plain ASCII
    out_->push_back('"');
    out_->append(key);
    out_->append("\":");
  }

 private:
  std::string* out_;
};

}  // namespace

HttpResponse JsonError(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, {{"error", {{"code", code}, {"message", message}}}});
}

HttpResponse StatusJson(int http_status, std::string_view status,
                        std::optional<std::string_view> model_version) {
  json out = {{"status", status}};
  if (model_version) out["model_version"] = *model_version;
  return JsonResponse(http_status, out);
}

HttpResponse ModelVersionJson(std::string_view version) {
  return JsonResponse(200, {{"model_version", version}});
}

HttpResponse UsersJson(std::span<const std::string> users, int64_t total) {
  json list = json::array();
  for (const std::string& u : users) list.push_back(u);
  return JsonResponse(200, {{"users", std::move(list)}, {"total", total}});
}

HttpResponse ItemListJson(const ItemList& list) {
  HttpResponse r;
  r.body.reserve(96 + list.items.size() * (list.details ? 160 : 64));
  ListWriter w(&r.body);
  w.Raw("{");
  if (!list.subject_key.empty()) {
    w.Key(list.subject_key);
    w.String(list.subject);
    w.Raw(",");
  }
  w.Key("model_version");
  w.String(list.model_version);
  if (!list.recommendation_id.empty()) {
    w.Raw(",");
    w.Key("recommendation_id");
    w.String(list.recommendation_id);
  }
  if (!list.variant.empty()) {
    w.Raw(",");
    w.Key("variant");
    w.String(list.variant);
  }
  w.Raw(",\"items\":[");
  for (size_t i = 0; i < list.items.size(); ++i) {
    const ListedItem& item = list.items[i];
    w.Raw(i == 0 ? "{" : ",{");
    w.Key("item");
    w.String(item.item);
    w.Raw(",");
    w.Key("score");
    w.Number(item.score);
    w.Raw(",");
    w.Key("source");
    w.String(item.source);
    if (list.details) {
      w.Raw(",");
      w.Key("title");
      w.String(item.title);
      w.Raw(",\"categories\":[");
      for (size_t c = 0; c < item.categories.size(); ++c) {
        if (c > 0) w.Raw(",");
        w.String(item.categories[c]);
      }
      w.Raw("]");
    }
    if (list.predicted_rating) {
      // A non-finite prediction (a damaged head) is sent as unknown, not as invalid JSON.
      w.Raw(",");
      w.Key("predicted_rating");
      if (item.predicted_rating) {
        w.Number(*item.predicted_rating);
      } else {
        w.Raw("null");
      }
    }
    if (item.explanation) {
      const ItemExplanation& e = *item.explanation;
      w.Raw(",");
      w.Key("vector");
      w.String(e.vector);
      w.Raw(",\"because\":[");
      for (size_t b = 0; b < e.because.size(); ++b) {
        w.Raw(b == 0 ? "{" : ",{");
        w.Key("item");
        w.String(e.because[b].item);
        if (list.details) {
          w.Raw(",");
          w.Key("title");
          w.String(e.because[b].title);
        }
        w.Raw(",");
        w.Key("contribution");
        w.Number(e.because[b].contribution);
        w.Raw(",");
        w.Key("share");
        w.Number(e.because[b].share);
        w.Raw("}");
      }
      w.Raw("],");
      w.Key("because_others");
      w.Number(e.others);
      w.Raw(",");
      w.Key("because_base");
      w.Number(e.base);
    }
    w.Raw("}");
  }
  w.Raw("]}");
  return r;
}

HttpResponse ExperimentReportJson(const Experiment& experiment,
                                  std::span<const VariantComparison> comparisons,
                                  const std::optional<PromotionOutcome>& outcome) {
  auto proportion = [](const Proportion& p) {
    return json{{"rate", p.rate}, {"low", p.low}, {"high", p.high}};
  };
  auto test = [](const ProportionTest& t) {
    return json{{"difference", t.difference}, {"z", t.z}, {"p_value", t.p_value}};
  };
  json list = json::array();
  for (size_t i = 0; i < comparisons.size() && i < experiment.variants.size(); ++i) {
    const ExperimentVariant& variant = experiment.variants[i];
    const VariantComparison& c = comparisons[i];
    json v = {{"name", variant.name},
              {"share", variant.share},
              {"ef_search", variant.ef_search},
              {"n", variant.n},
              {"model", variant.model.empty() ? std::string("live") : variant.model},
              {"impressions", c.tally.impressions},
              {"clicks", c.tally.clicks},
              {"carts", c.tally.carts},
              {"purchases", c.tally.purchases},
              {"ctr", proportion(c.ctr)},
              {"conversion", proportion(c.conversion)}};
    if (c.ctr_test && c.conversion_test) {
      v["vs_control"] = {{"ctr", test(*c.ctr_test)}, {"conversion", test(*c.conversion_test)}};
    }
    list.push_back(std::move(v));
  }
  json body = {{"experiment", experiment.name},
               {"salt", experiment.salt},
               {"control", experiment.variants[0].name},
               {"variants", std::move(list)}};
  if (experiment.promotion) {
    const PromotionRule& rule = *experiment.promotion;
    json p = {{"variant", rule.variant},
              {"metric", rule.metric},
              {"min_impressions", rule.min_impressions},
              {"margin", rule.margin},
              {"state", outcome ? outcome->state : std::string("waiting")}};
    if (outcome) {
      p["difference"] = outcome->difference;
      p["lower_bound"] = outcome->lower_bound;
      p["control_impressions"] = outcome->control_impressions;
      p["variant_impressions"] = outcome->variant_impressions;
      p["message"] = outcome->message;
    }
    body["promotion"] = std::move(p);
  }
  return JsonResponse(200, body);
}

std::string ItemSourcePairsJson(std::span<const std::pair<std::string, std::string>> items) {
  std::string out;
  out.reserve(2 + items.size() * 32);
  ListWriter w(&out);
  w.Raw("[");
  for (size_t i = 0; i < items.size(); ++i) {
    w.Raw(i == 0 ? "[" : ",[");
    w.String(items[i].first);
    w.Raw(",");
    w.String(items[i].second);
    w.Raw("]");
  }
  w.Raw("]");
  return out;
}

HttpResponse CatalogEntryJson(std::string_view item, bool in_model, const CatalogEntry& e) {
  return JsonResponse(200, {{"item", item},
                            {"in_model", in_model},
                            {"title", e.title},
                            {"categories", e.categories},
                            {"available", e.available}});
}

HttpResponse FeedbackAckJson(int64_t accepted, int64_t duplicates,
                             std::span<const std::pair<int, std::string>> rejected, int64_t seq) {
  json out;
  out["accepted"] = accepted;
  out["duplicates"] = duplicates;
  if (seq > 0) out["seq"] = seq;
  json list = json::array();
  for (const auto& [index, error] : rejected) list.push_back({{"index", index}, {"error", error}});
  out["rejected"] = std::move(list);
  return JsonResponse(200, out);
}

HttpResponse UserEventsJson(std::string_view user, std::span<const StoredEvent> history) {
  json events = json::array();
  for (const StoredEvent& se : history) {
    json e;
    e["seq"] = se.seq;
    e["item"] = se.event.item;
    e["type"] = se.event.type;
    if (se.event.value) e["value"] = *se.event.value;
    e["timestamp"] = absl::FormatTime(
        "%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(se.event.timestamp), absl::UTCTimeZone());
    if (!se.event.id.empty()) e["id"] = se.event.id;
    events.push_back(std::move(e));
  }
  json out;
  out["user"] = user;
  out["events"] = std::move(events);
  return JsonResponse(200, out);
}

HttpResponse ErasedUserJson(std::string_view user, int64_t erased_events) {
  json out;
  out["user"] = user;
  out["erased_events"] = erased_events;
  return JsonResponse(200, out);
}

HttpResponse RetrainStateJson(bool running, const std::optional<RetrainOutcome>& last) {
  json out;
  out["running"] = running;
  out["last"] = last ? OutcomeObject(*last) : json(nullptr);
  return JsonResponse(200, out);
}

HttpResponse RetrainOutcomeJson(const RetrainOutcome& outcome) {
  return JsonResponse(200, OutcomeObject(outcome));
}

}  // namespace recloop
