// `recloop experiments report --store DB`: the A/B test's per-variant table from the impressions
// and credited events a server stored (serving/impression_log.h), offline, with the same
// intervals and tests as GET /v1/admin/experiments (serving/experiment.h), and optionally a PNG
// of each variant's cumulative conversion and CTR over time, drawn by gnuplot.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/event_store.h"
#include "serving/experiment.h"
#include "tools/subcommands.h"

namespace recloop {
namespace {

constexpr int kPlotSteps = 50;  // points per curve

struct ExperimentsReportCommand {
  std::string store;
  std::string control = "control";  // the variant the others are tested against
  std::string plot;                 // PNG path; empty = none
};

// Each variant's lists and credits, in time order.
struct Timeline {
  std::vector<int64_t> impressions_ms;
  std::map<std::string, std::vector<int64_t>> credited_ms;  // by type
};

std::string Interval(const Proportion& p) {
  return absl::StrFormat("%.4f [%.4f, %.4f]", p.rate, p.low, p.high);
}

std::string Test(const std::optional<ProportionTest>& t) {
  if (!t) return "(control)";
  return absl::StrFormat("%+.4f p=%.3g", t->difference, t->p_value);
}

// Writes the cumulative rates of each variant at kPlotSteps instants and runs gnuplot on them.
absl::Status Plot(const std::map<std::string, Timeline>& timelines, const std::string& png) {
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (const auto& [name, t] : timelines) {
    if (t.impressions_ms.empty()) continue;
    first = std::min(first, t.impressions_ms.front());
    last = std::max(last, t.impressions_ms.back());
  }
  if (first > last) return absl::FailedPreconditionError("no impressions to plot");
  const std::string data = png + ".dat", script = png + ".gp";
  std::ofstream out(data);
  std::string plots;
  int block = 0;
  for (const auto& [name, t] : timelines) {
    auto upto = [](const std::vector<int64_t>& v, int64_t at) {
      return static_cast<int64_t>(std::upper_bound(v.begin(), v.end(), at) - v.begin());
    };
    const auto find = [&t](const char* type) {
      const auto it = t.credited_ms.find(type);
      return it == t.credited_ms.end() ? std::vector<int64_t>{} : it->second;
    };
    const std::vector<int64_t> purchases = find("purchase"), clicks = find("click");
    out << "# " << name << "\n";
    for (int s = 1; s <= kPlotSteps; ++s) {
      const int64_t at = first + (last - first) * s / kPlotSteps;
      const double n = static_cast<double>(upto(t.impressions_ms, at));
      if (n == 0) continue;
      out << (at - first) / 1000.0 << ' ' << upto(purchases, at) / n << ' ' << upto(clicks, at) / n
          << '\n';
    }
    out << "\n\n";
    absl::StrAppend(&plots, plots.empty() ? "" : ", ", "'", data, "' index ", block,
                    " using 1:2 with lines title '", name, " conversion', '", data, "' index ",
                    block, " using 1:3 with lines dashtype 2 title '", name, " CTR'");
    ++block;
  }
  out.close();
  std::ofstream gp(script);
  gp << "set terminal pngcairo size 900,500\nset output '" << png << "'\n"
     << "set xlabel 'seconds since the first impression'\nset ylabel 'per list (cumulative)'\n"
     << "set key outside\nplot " << plots << "\n";
  gp.close();
  const std::string command = absl::StrCat("gnuplot '", script, "'");
  if (std::system(command.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("gnuplot failed on ", script, " (Debian: apt-get install gnuplot-nox)"));
  }
  return absl::OkStatus();
}

int RunReport(const ExperimentsReportCommand& cmd) {
  if (!std::filesystem::exists(cmd.store)) {
    return Fail(absl::NotFoundError("no event store at " + cmd.store));
  }
  auto store = EventStore::Open({cmd.store});
  if (!store.ok()) return Fail(store.status());
  std::map<std::string, Timeline> timelines;
  absl::Status s = (*store)->ForEachImpression([&](const ImpressionRecord& r) {
    if (!r.variant.empty()) timelines[r.variant].impressions_ms.push_back(r.at_ms);
    return true;
  });
  if (s.ok()) {
    s = (*store)->ForEachAttribution([&](const AttributionRecord& r) {
      if (!r.variant.empty()) timelines[r.variant].credited_ms[r.type].push_back(r.at_ms);
      return true;
    });
  }
  if (!s.ok()) return Fail(s);
  if (timelines.empty()) {
    return Fail(absl::NotFoundError(
        absl::StrCat(cmd.store, " holds no impressions of an experiment (serve --experiment)")));
  }
  if (!timelines.contains(cmd.control)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("no variant named '", cmd.control, "' in ", cmd.store, " (--control)")));
  }
  std::vector<VariantTally> tallies;
  auto tally = [](const std::string& name, Timeline& t) {
    std::sort(t.impressions_ms.begin(), t.impressions_ms.end());
    for (auto& [type, v] : t.credited_ms) std::sort(v.begin(), v.end());
    auto count = [&t](const char* type) {
      const auto it = t.credited_ms.find(type);
      return it == t.credited_ms.end() ? int64_t{0} : static_cast<int64_t>(it->second.size());
    };
    return VariantTally{name, static_cast<int64_t>(t.impressions_ms.size()), count("click"),
                        count("cart"), count("purchase")};
  };
  tallies.push_back(tally(cmd.control, timelines[cmd.control]));
  for (auto& [name, t] : timelines) {
    if (name != cmd.control) tallies.push_back(tally(name, t));
  }
  std::printf("%-16s %11s %8s %9s %-28s %-28s %-22s %s\n", "variant", "impressions", "clicks",
              "purchases", "CTR [95% CI]", "conversion [95% CI]", "conversion vs control",
              "CTR vs control");
  for (const VariantComparison& c : CompareVariants(tallies)) {
    std::printf("%-16s %11lld %8lld %9lld %-28s %-28s %-22s %s\n", c.tally.name.c_str(),
                static_cast<long long>(c.tally.impressions), static_cast<long long>(c.tally.clicks),
                static_cast<long long>(c.tally.purchases), Interval(c.ctr).c_str(),
                Interval(c.conversion).c_str(), Test(c.conversion_test).c_str(),
                Test(c.ctr_test).c_str());
  }
  if (!cmd.plot.empty()) {
    if (absl::Status p = Plot(timelines, cmd.plot); !p.ok()) return Fail(p);
    std::fprintf(stderr, "wrote %s\n", cmd.plot.c_str());
  }
  return 0;
}

}  // namespace

Subcommand AddExperimentsCommand(CLI::App* app) {
  auto cmd = std::make_shared<ExperimentsReportCommand>();
  CLI::App* experiments = app->add_subcommand("experiments", "A/B tests of serving");
  experiments->require_subcommand(1);
  CLI::App* sub = experiments->add_subcommand(
      "report",
      "Per-variant impressions, credited clicks and purchases, CTR and conversion with 95% "
      "intervals and the two-proportion test against the control, from an event store");
  sub->add_option("--store", cmd->store, "The event store (`recloop serve --events`)")->required();
  sub->add_option("--control", cmd->control, "The variant the others are compared with")
      ->capture_default_str();
  sub->add_option("--plot", cmd->plot,
                  "Also draw each variant's cumulative conversion and CTR over time into this "
                  "PNG (gnuplot)");
  return {sub, [cmd] { return RunReport(*cmd); }};
}

}  // namespace recloop
