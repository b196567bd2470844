#include "bench/fanout_report.h"

#include <cstdio>

#include "bench/report.h"

namespace nq::bench {
namespace {

using traffic::Summary;

struct Line {
  const char* name;
  const char* key;  // in the JSON's "figures"
  double FanoutRun::*pick;
  bool count = false;  // a number of agents, not milliseconds
};

// The rows of the table, headline figures first.
constexpr Line kLines[] = {
    {"apply, all acked", "apply_all_acked", &FanoutRun::apply_all_acked_ms},
    {"  submit", "submit", &FanoutRun::submit_ms},
    {"  until injecting", "until_injecting", &FanoutRun::selecting_ms},
    {"kill switch, all reverted", "kill_switch_all_reverted", &FanoutRun::all_reverted_ms},
    {"  HTTP answer", "kill_switch", &FanoutRun::killswitch_ms},
    {"  controller took", "killswitch_controller_took", &FanoutRun::killswitch_controller_ms},
    {"  slowest agent", "killswitch_slowest_agent", &FanoutRun::slowest_agent_ms},
    {"  agents past deadline", "killswitch_agents_late", &FanoutRun::agents_late, true},
    {"release", "release", &FanoutRun::release_ms},
};

nlohmann::json summary_json(const Summary& s) {
  return {{"n", s.n},        {"p50_ms", s.p50},   {"p99_ms", s.p99},
          {"max_ms", s.max}, {"mean_ms", s.mean}, {"min_ms", s.min}};
}

nlohmann::json memory_json(const GroupMemory& m) {
  return {{"processes", m.processes},
          {"rss_kib", m.rss_kib},
          {"pss_kib", m.pss_kib},
          {"anon_kib", m.anon_kib}};
}

std::string memory_line(const GroupMemory& m) {
  const double n = m.processes > 0 ? m.processes : 1;
  return printf_string("PSS %.1f MiB (%.1f MiB each), private anon %.1f MiB, RSS sum %.1f MiB",
                       mib(m.pss_kib), mib(m.pss_kib) / n, mib(m.anon_kib), mib(m.rss_kib));
}

}  // namespace

Result<uint64_t> parse_smaps_rollup_pss(std::string_view text) {
  // "Pss:                1234 kB"; Pss_Anon/Pss_File/... come after it.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with("Pss:")) continue;
    line.remove_prefix(4);
    uint64_t kib = 0;
    bool digits = false;
    for (char c : line) {
      if (c >= '0' && c <= '9') {
        kib = kib * 10 + static_cast<uint64_t>(c - '0');
        digits = true;
      } else if (digits) {
        break;
      }
    }
    if (!digits) return Error::invalid_argument("smaps_rollup.Pss", "has no number");
    return kib;
  }
  return Error::invalid_argument("smaps_rollup.Pss", "missing");
}

Result<uint64_t> parse_stat_cpu_ticks(std::string_view text) {
  // The command (field 2) is in parentheses and may hold spaces: count the
  // fields after its closing one. Field 3 (state) comes first.
  const size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return Error::invalid_argument("stat", "no command field");
  std::vector<uint64_t> fields;
  std::string_view rest = text.substr(paren + 1);
  size_t i = 0;
  int field = 2;
  while (i < rest.size() && field < 15) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    const size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (start == i) break;
    ++field;
    if (field == 14 || field == 15) {
      uint64_t v = 0;
      for (char c : rest.substr(start, i - start)) {
        if (c < '0' || c > '9')
          return Error::invalid_argument(field == 14 ? "stat.utime" : "stat.stime", "not a number");
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      fields.push_back(v);
    }
  }
  if (fields.size() != 2) return Error::invalid_argument("stat.utime", "missing");
  return fields[0] + fields[1];
}

std::vector<double> column(const std::vector<FanoutRun>& runs, double FanoutRun::*pick) {
  std::vector<double> out;
  out.reserve(runs.size());
  for (const FanoutRun& r : runs) out.push_back(r.*pick);
  return out;
}

bool goal_met(const FanoutReport& r, const FanoutGoals& g) {
  if (r.measured.empty()) return false;
  const Summary apply = traffic::summarize(column(r.measured, &FanoutRun::apply_all_acked_ms));
  const Summary ks = traffic::summarize(column(r.measured, &FanoutRun::all_reverted_ms));
  return apply.p99 <= g.max_ms && ks.p99 <= g.max_ms;
}

std::string render_fanout_table(const FanoutReport& r, const FanoutGoals& g) {
  std::string out = printf_string(
      "nq-bench-fanout: %d agents, %d runs (+%d warm-up), submit via %s, kernel %s, %d CPUs\n",
      r.agents, r.runs, r.warmup, r.submit_via.c_str(), r.kernel.c_str(), r.cpus);
  out += "fault: " + r.fault + "\n";
  out += printf_string("set-up %.1f s; load average %.2f at start, %.2f at end\n\n", r.setup_s,
                       r.load_before, r.load_after);
  out += printf_string("%-27s %-10s %-10s %-10s %s\n", "figure", "p50", "p99", "max", "cold");
  for (const Line& l : kLines) {
    const Summary s = traffic::summarize(column(r.measured, l.pick));
    const auto fmt = [&](double v) { return l.count ? printf_string("%.0f", v) : format_ms(v); };
    std::string cold;
    for (const FanoutRun& c : r.cold) cold += (cold.empty() ? "" : ", ") + fmt(c.*l.pick);
    out += printf_string("%-27s %-10s %-10s %-10s %s\n", l.name, fmt(s.p50).c_str(),
                         fmt(s.p99).c_str(), fmt(s.max).c_str(), cold.c_str());
  }
  const Summary apply = traffic::summarize(column(r.measured, &FanoutRun::apply_all_acked_ms));
  const Summary ks = traffic::summarize(column(r.measured, &FanoutRun::all_reverted_ms));
  out += printf_string("\n%d agents: %s\n", r.agents, memory_line(r.agents_memory).c_str());
  out += "controller: " + memory_line(r.controller_memory) + "\n";
  out += printf_string(
      "CPU per run (apply + kill switch + release): agents %.0f ms in total (%.1f ms each), "
      "controller %.0f ms; %d CPUs\n",
      r.agents_cpu_ms_per_run, r.agents > 0 ? r.agents_cpu_ms_per_run / r.agents : 0.0,
      r.controller_cpu_ms_per_run, r.cpus);
  out += printf_string(
      "verified: %d checks, all passed (List on %d agents after every apply and kill switch; "
      "qdiscs of %d sampled pods in the kernel)\n",
      r.verifications, r.verified_agents, r.verified_pods);
  out += printf_string(
      "\ngoal (p99 <= %s at %d agents): apply all acked p99 %s, kill switch p99 %s: %s\n",
      format_ms(g.max_ms).c_str(), r.agents, format_ms(apply.p99).c_str(),
      format_ms(ks.p99).c_str(), goal_met(r, g) ? "met" : "NOT met");
  return out;
}

nlohmann::json fanout_to_json(const FanoutReport& r, const FanoutGoals& g) {
  nlohmann::json figures = nlohmann::json::object();
  nlohmann::json cold = nlohmann::json::array();
  for (const Line& l : kLines)
    figures[l.key] = summary_json(traffic::summarize(column(r.measured, l.pick)));
  for (const FanoutRun& c : r.cold)
    cold.push_back({{"apply_all_acked_ms", c.apply_all_acked_ms},
                    {"killswitch_ms", c.killswitch_ms},
                    {"all_reverted_ms", c.all_reverted_ms},
                    {"release_ms", c.release_ms}});
  std::vector<nlohmann::json> raw;
  for (const FanoutRun& m : r.measured)
    raw.push_back({{"apply_all_acked_ms", m.apply_all_acked_ms},
                   {"submit_ms", m.submit_ms},
                   {"selecting_ms", m.selecting_ms},
                   {"killswitch_ms", m.killswitch_ms},
                   {"all_reverted_ms", m.all_reverted_ms},
                   {"agents_late", m.agents_late},
                   {"killswitch_controller_ms", m.killswitch_controller_ms},
                   {"slowest_agent_ms", m.slowest_agent_ms},
                   {"release_ms", m.release_ms}});
  return {{"agents", r.agents},
          {"runs", r.runs},
          {"warmup", r.warmup},
          {"submit_via", r.submit_via},
          {"fault", r.fault},
          {"kernel", r.kernel},
          {"cpus", r.cpus},
          {"load_before", r.load_before},
          {"load_after", r.load_after},
          {"setup_s", r.setup_s},
          {"figures", figures},
          {"cold", cold},
          {"runs_raw", raw},
          {"agents_memory", memory_json(r.agents_memory)},
          {"controller_memory", memory_json(r.controller_memory)},
          {"cpu_ms_per_run",
           {{"agents", r.agents_cpu_ms_per_run}, {"controller", r.controller_cpu_ms_per_run}}},
          {"verified",
           {{"agents", r.verified_agents}, {"pods", r.verified_pods}, {"checks", r.verifications}}},
          {"goal", {{"max_ms", g.max_ms}, {"met", goal_met(r, g)}}}};
}

}  // namespace nq::bench
