#include "controller/prom/slo.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <thread>

namespace nq::prom {
namespace {

using SteadyClock = std::chrono::steady_clock;
using google::protobuf::util::TimeUtil;

std::string format_value(std::optional<double> v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", *v);
  return buf;
}

std::string format_bound(Comparison c, double threshold) {
  return std::string(comparison_symbol(c)) + " " + format_value(threshold);
}

std::string format_time(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  return TimeUtil::ToString(TimeUtil::NanosecondsToTimestamp(ns.count()));
}

// JSON has no NaN or infinities: those become null, with the text alongside.
nlohmann::json json_value(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

}  // namespace

std::optional<double> worst_value(const QueryResult& result, Comparison c, double threshold) {
  if (result.samples.empty()) return std::nullopt;
  std::optional<double> worst;
  for (const auto& s : result.samples) {
    const double v = s.value;
    // NaN is never within bounds: it is the worst there is.
    if (std::isnan(v)) return v;
    if (!worst) {
      worst = v;
      continue;
    }
    switch (c) {
      case Comparison::kLess:
      case Comparison::kLessEqual:
        worst = std::max(*worst, v);
        break;
      case Comparison::kGreater:
      case Comparison::kGreaterEqual:
        worst = std::min(*worst, v);
        break;
      case Comparison::kEqual:
      case Comparison::kNotEqual:
        if (compare(*worst, c, threshold) && !compare(v, c, threshold)) worst = v;
        break;
    }
  }
  return worst;
}

bool SloPhase::passed() const {
  return std::all_of(results.begin(), results.end(), [](const SloResult& r) { return r.passed; });
}

SloPhase check_slos(Querier& querier, const std::vector<SloCheck>& checks, std::string phase) {
  SloPhase out;
  out.phase = std::move(phase);
  out.at = std::chrono::system_clock::now();
  for (const auto& c : checks) {
    SloResult r;
    r.name = c.name.empty() ? c.query : c.name;
    r.query = c.query;
    r.bound = format_bound(c.comparison, c.threshold);
    auto result = querier.query(c.query);
    if (!result.ok()) {
      r.error = result.error().message();
    } else {
      r.value = worst_value(*result, c.comparison, c.threshold);
      if (!r.value)
        r.error = "no data";
      else
        r.passed = compare(*r.value, c.comparison, c.threshold);
    }
    out.results.push_back(std::move(r));
  }
  return out;
}

Recovery measure_recovery(Querier& querier, const std::vector<SloCheck>& checks,
                          SteadyClock::time_point reverted_at, const RecoveryOptions& options,
                          const std::function<bool()>& stop) {
  Recovery rec;
  const auto deadline = reverted_at + options.timeout;
  for (;;) {
    const auto polled = SteadyClock::now();
    rec.last = check_slos(querier, checks, "recovery");
    ++rec.polls;
    rec.duration = std::chrono::duration_cast<std::chrono::milliseconds>(polled - reverted_at);
    if (rec.last.passed()) {
      rec.recovered = true;
      return rec;
    }
    const auto next = polled + options.poll;
    if (next > deadline || (stop && stop())) break;
    std::this_thread::sleep_until(next);
  }
  rec.duration =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - reverted_at);
  return rec;
}

bool SloReport::passed() const {
  return (!pre || pre->passed()) && (!post || post->passed()) && (!recovery || recovery->recovered);
}

nlohmann::json to_json(const SloPhase& p) {
  nlohmann::json j;
  j["phase"] = p.phase;
  j["at"] = format_time(p.at);
  j["passed"] = p.passed();
  j["slos"] = nlohmann::json::array();
  for (const auto& r : p.results) {
    nlohmann::json s{{"name", r.name},
                     {"query", r.query},
                     {"bound", r.bound},
                     {"value", json_value(r.value)},
                     {"value_text", format_value(r.value)},
                     {"passed", r.passed}};
    if (!r.error.empty()) s["error"] = r.error;
    j["slos"].push_back(std::move(s));
  }
  return j;
}

nlohmann::json to_json(const SloReport& r) {
  nlohmann::json j;
  j["experiment"] = r.experiment;
  j["passed"] = r.passed();
  if (r.pre) j["pre"] = to_json(*r.pre);
  if (r.post) j["post"] = to_json(*r.post);
  if (r.recovery) {
    j["recovery"] = {{"recovered", r.recovery->recovered},
                     {"duration_ms", r.recovery->duration.count()},
                     {"polls", r.recovery->polls},
                     {"last", to_json(r.recovery->last)}};
  }
  return j;
}

std::string to_table(const SloReport& r) {
  struct Row {
    std::string name, bound, pre = "-", post = "-", status = "PASS";
  };
  std::vector<Row> rows;
  std::map<std::string, size_t> index;
  auto row = [&](const SloResult& s) -> Row& {
    auto [it, added] = index.emplace(s.name, rows.size());
    if (added) rows.push_back({s.name, s.bound});
    return rows[it->second];
  };
  for (const bool pre : {true, false}) {
    const std::optional<SloPhase>& phase = pre ? r.pre : r.post;
    if (!phase) continue;
    for (const auto& s : phase->results) {
      Row& x = row(s);
      (pre ? x.pre : x.post) = s.error.empty() ? format_value(s.value) : s.error;
      if (!s.passed) x.status = "FAIL";
    }
  }
  std::vector<Row> all = {{"SLO", "BOUND", "PRE", "POST", "STATUS"}};
  all.insert(all.end(), rows.begin(), rows.end());
  size_t w[5] = {};
  for (const auto& x : all) {
    w[0] = std::max(w[0], x.name.size());
    w[1] = std::max(w[1], x.bound.size());
    w[2] = std::max(w[2], x.pre.size());
    w[3] = std::max(w[3], x.post.size());
  }
  std::string out;
  for (const auto& x : all) {
    char line[1024];
    std::snprintf(line, sizeof(line), "%-*s  %-*s  %-*s  %-*s  %s\n", int(w[0]), x.name.c_str(),
                  int(w[1]), x.bound.c_str(), int(w[2]), x.pre.c_str(), int(w[3]), x.post.c_str(),
                  x.status.c_str());
    out += line;
  }
  if (r.recovery) {
    char line[128];
    std::snprintf(line, sizeof(line), "recovery: %s after %.1f s (%d polls)\n",
                  r.recovery->recovered ? "within bounds" : "NOT recovered",
                  r.recovery->duration.count() / 1000.0, r.recovery->polls);
    out += line;
  }
  out += std::string("result: ") + (r.passed() ? "PASS" : "FAIL") + "\n";
  return out;
}

}  // namespace nq::prom
