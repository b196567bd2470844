#include "controller/daemon/report.h"

#include <google/protobuf/util/time_util.h>

#include <cmath>
#include <set>

namespace nq::controller {

using google::protobuf::util::TimeUtil;

namespace {

prom::Comparison negate(prom::Comparison c) {
  switch (c) {
    case prom::Comparison::kGreater:
      return prom::Comparison::kLessEqual;
    case prom::Comparison::kGreaterEqual:
      return prom::Comparison::kLess;
    case prom::Comparison::kLess:
      return prom::Comparison::kGreaterEqual;
    case prom::Comparison::kLessEqual:
      return prom::Comparison::kGreater;
    case prom::Comparison::kEqual:
      return prom::Comparison::kNotEqual;
    case prom::Comparison::kNotEqual:
      return prom::Comparison::kEqual;
  }
  return c;
}

// JSON has no NaN or infinities.
nlohmann::json number(std::optional<double> v) {
  if (!v || !std::isfinite(*v)) return nullptr;
  return *v;
}

std::string text(std::optional<double> v) {
  if (!v) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", *v);
  return buf;
}

std::string step_type(const experiment::Template& t) {
  if (t.type == experiment::TemplateType::kChaos && t.chaos)
    return std::string(experiment::kind_name(t.chaos->kind));
  return std::string(experiment::template_type_name(t.type));
}

std::string phase_name(const PhaseRecord& p) {
  std::string out;
  for (const auto& lane : p.lanes) {
    std::string l;
    for (const auto& s : lane) l += (l.empty() ? "" : ", ") + s;
    out += (out.empty() ? "" : " | ") + l;
  }
  return out;
}

}  // namespace

std::vector<prom::SloCheck> checks_from_rules(const std::vector<prom::AbortRule>& rules) {
  std::vector<prom::SloCheck> checks;
  for (const auto& r : rules)
    checks.push_back(
        {r.name.empty() ? r.query : r.name, r.query, negate(r.comparison), r.threshold});
  return checks;
}

std::vector<prom::SloCheck> workflow_slos(const experiment::Workflow& wf) {
  std::vector<prom::SloCheck> out;
  std::set<std::string> names;
  for (const auto& t : wf.templates) {
    if (t.type != experiment::TemplateType::kSloCheck) continue;
    for (const auto& c : t.checks)
      if (names.insert(c.name).second) out.push_back(c);
  }
  if (out.empty()) return checks_from_rules(wf.abort_when);
  return out;
}

void plan_records(const experiment::Workflow& wf, const experiment::Plan& plan,
                  std::vector<PhaseRecord>& phases, std::vector<StepRecord>& steps) {
  phases.clear();
  steps.clear();
  for (size_t p = 0; p < plan.phases.size(); ++p) {
    PhaseRecord rec;
    for (size_t l = 0; l < plan.phases[p].lanes.size(); ++l) {
      rec.lanes.emplace_back();
      for (size_t idx : plan.phases[p].lanes[l].steps) {
        const auto& t = wf.templates[idx];
        rec.lanes.back().push_back(t.name);
        if (t.type == experiment::TemplateType::kChaos) rec.injects = true;
        StepRecord s;
        s.name = t.name;
        s.type = step_type(t);
        s.phase = p;
        s.lane = l;
        steps.push_back(std::move(s));
      }
    }
    phases.push_back(std::move(rec));
  }
}

std::string format_wall_time(WallTime t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch());
  return TimeUtil::ToString(TimeUtil::NanosecondsToTimestamp(ns.count()));
}

std::optional<double> slo_value(const std::optional<prom::SloPhase>& phase,
                                const std::string& name) {
  if (!phase) return std::nullopt;
  for (const auto& r : phase->results)
    if (r.name == name) return r.value;
  return std::nullopt;
}

nlohmann::json phase_json(size_t index, const PhaseRecord& p,
                          const std::vector<StepRecord>& steps) {
  nlohmann::json j = {{"phase", index + 1}, {"name", phase_name(p)}, {"lanes", p.lanes}};
  if (p.started) j["started_at"] = format_wall_time(*p.started);
  if (p.ended) j["ended_at"] = format_wall_time(*p.ended);
  if (p.started && p.ended)
    j["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(*p.ended - *p.started).count();
  j["steps"] = nlohmann::json::array();
  for (const auto& s : steps) {
    if (s.phase != index) continue;
    nlohmann::json sj = {{"name", s.name},
                         {"type", s.type},
                         {"lane", s.lane},
                         {"outcome", s.outcome.empty() ? "not run" : s.outcome}};
    if (s.started) sj["started_at"] = format_wall_time(*s.started);
    if (s.ended) sj["ended_at"] = format_wall_time(*s.ended);
    if (s.injections) sj["injections"] = s.injections;
    if (s.during) sj["during"] = prom::to_json(*s.during);
    j["steps"].push_back(std::move(sj));
  }
  nlohmann::json slo = nlohmann::json::object();
  if (p.before) slo["before"] = prom::to_json(*p.before);
  if (p.during) slo["during"] = prom::to_json(*p.during);
  if (p.after) slo["after"] = prom::to_json(*p.after);
  j["slo"] = std::move(slo);
  // The same values keyed by SLO: what a reader (or a dashboard) compares.
  nlohmann::json values = nlohmann::json::object();
  for (const auto* ph : {&p.before, &p.during, &p.after}) {
    if (!*ph) continue;
    for (const auto& r : (*ph)->results) {
      auto& v = values[r.name];
      v["bound"] = r.bound;
      for (const char* k : {"before", "during", "after"})
        if (!v.contains(k)) v[k] = nullptr;
    }
  }
  for (auto& [name, v] : values.items()) {
    v["before"] = number(slo_value(p.before, name));
    v["during"] = number(slo_value(p.during, name));
    v["after"] = number(slo_value(p.after, name));
  }
  j["values"] = std::move(values);
  if (p.recovery)
    j["recovery"] = {{"recovered", p.recovery->recovered},
                     {"duration_ms", p.recovery->duration.count()},
                     {"polls", p.recovery->polls}};
  return j;
}

std::string phases_table(const std::vector<PhaseRecord>& phases) {
  std::vector<std::vector<std::string>> rows = {
      {"PHASE", "SLO", "BOUND", "BEFORE", "DURING", "AFTER", "RECOVERY"}};
  for (size_t i = 0; i < phases.size(); ++i) {
    const auto& p = phases[i];
    const prom::SloPhase* names = p.before ? &*p.before : p.after ? &*p.after : nullptr;
    if (!names) continue;
    std::string recovery = "-";
    if (p.recovery) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "%s%.1f s", p.recovery->recovered ? "" : "NOT after ",
                    p.recovery->duration.count() / 1000.0);
      recovery = buf;
    }
    for (const auto& r : names->results)
      rows.push_back({std::to_string(i + 1) + " " + phase_name(p), r.name, r.bound,
                      text(slo_value(p.before, r.name)), text(slo_value(p.during, r.name)),
                      text(slo_value(p.after, r.name)), recovery});
  }
  if (rows.size() == 1) return "";
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
  std::string out;
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size(); ++c) {
      out += r[c];
      if (c + 1 < r.size()) out += std::string(w[c] - r[c].size() + 2, ' ');
    }
    out += "\n";
  }
  return out;
}

}  // namespace nq::controller
