#include "bench/report.h"

#include <algorithm>
#include <cstdio>

namespace nq::bench {
namespace {

using traffic::Summary;

struct Row {
  std::string name;
  Summary nodequake, exec;
  double ratio = 0;
};

std::vector<Row> rows(const BenchReport& r) {
  std::vector<Row> out;
  for (const auto& op : r.operations) {
    Row row{op.name, traffic::summarize(op.nodequake_ms), traffic::summarize(op.exec_ms), 0};
    row.ratio = ratio_p50(row.nodequake, row.exec);
    out.push_back(std::move(row));
  }
  return out;
}

struct GoalCheck {
  double worst_p50 = 0;    // highest nodequake p50 over the operations
  double worst_ratio = 0;  // lowest ratio over the operations
  bool p50_met = true, ratio_met = true, rss_met = true;
};

GoalCheck check_goals(const std::vector<Row>& rs, const BenchReport& r, const Goals& g) {
  GoalCheck c;
  c.worst_ratio = rs.empty() ? 0 : rs.front().ratio;
  for (const Row& row : rs) {
    c.worst_p50 = std::max(c.worst_p50, row.nodequake.p50);
    c.worst_ratio = std::min(c.worst_ratio, row.ratio);
  }
  c.p50_met = !rs.empty() && c.worst_p50 <= g.max_p50_ms;
  c.ratio_met = !rs.empty() && c.worst_ratio >= g.min_ratio;
  c.rss_met = r.rss_idle.rss_mib() <= g.max_idle_rss_mib;
  return c;
}

const char* met(bool ok) {
  return ok ? "met" : "NOT met";
}

std::string memory_line(const ProcMemory& m) {
  return printf_string("%.1f MiB (anon %.1f, file %.1f, shmem %.1f; %d threads)", m.rss_mib(),
                       mib(m.anon_kib), mib(m.file_kib), mib(m.shmem_kib), m.threads);
}

nlohmann::json summary_json(const Summary& s) {
  return {{"n", s.n},        {"p50_ms", s.p50}, {"p99_ms", s.p99},      {"mean_ms", s.mean},
          {"min_ms", s.min}, {"max_ms", s.max}, {"stddev_ms", s.stddev}};
}

nlohmann::json memory_json(const ProcMemory& m) {
  return {{"rss_kib", m.rss_kib},     {"anon_kib", m.anon_kib}, {"file_kib", m.file_kib},
          {"shmem_kib", m.shmem_kib}, {"hwm_kib", m.hwm_kib},   {"threads", m.threads}};
}

nlohmann::json checks_json(const CheckTally& t) {
  return {{"passed", t.passed}, {"total", t.total}, {"failures", t.failures}};
}

}  // namespace

void CheckTally::record(bool ok, const std::string& what) {
  ++total;
  if (ok) {
    ++passed;
  } else if (failures.size() < 10) {
    failures.push_back(what);
  }
}

double ratio_p50(const Summary& nodequake, const Summary& exec) {
  return nodequake.n == 0 || nodequake.p50 <= 0 ? 0.0 : exec.p50 / nodequake.p50;
}

std::string format_ms(double ms) {
  return printf_string(ms < 10 ? "%.2f ms" : "%.1f ms", ms);
}

std::string render_table(const BenchReport& r, const Goals& g) {
  const std::vector<Row> rs = rows(r);
  std::string out = printf_string(
      "nq-bench-apply: %d runs per operation (+%d warm-up), kernel %s, %d CPUs, "
      "journal on %s (%s)\n\n",
      r.runs, r.warmup, r.kernel.c_str(), r.cpus, r.journal_fs.c_str(), r.journal_dir.c_str());
  out += printf_string("load average %.2f at start, %.2f at end\n\n", r.load_before, r.load_after);
  out += printf_string("%-20s %-15s %-10s %-12s %-10s %s\n", "operation", "nodequake p50", "p99",
                       "exec p50", "p99", "ratio(p50)");
  for (const Row& row : rs) {
    out +=
        printf_string("%-20s %-15s %-10s %-12s %-10s %.1fx\n", row.name.c_str(),
                      format_ms(row.nodequake.p50).c_str(), format_ms(row.nodequake.p99).c_str(),
                      format_ms(row.exec.p50).c_str(), format_ms(row.exec.p99).c_str(), row.ratio);
  }
  out += "\nagent RSS idle " + memory_line(r.rss_idle) + "\n";
  out += printf_string("agent RSS after %d injections ", r.injections) + memory_line(r.rss_after) +
         "\n";
  out += printf_string(
      "effect checks (every %d runs, after apply and after revert): "
      "nodequake %d/%d, exec %d/%d passed\n",
      r.check_every, r.nodequake_checks.passed, r.nodequake_checks.total, r.exec_checks.passed,
      r.exec_checks.total);
  for (const auto& f : r.nodequake_checks.failures) out += "  FAILED (nodequake): " + f + "\n";
  for (const auto& f : r.exec_checks.failures) out += "  FAILED (exec): " + f + "\n";
  if (!r.steps.empty()) {
    out +=
        printf_string("\nwhere the agent's time goes (each step alone, same libraries, n=%zu):\n",
                      r.steps.front().ms.n);
    out += printf_string("  %-32s %-10s %-10s %s\n", "step", "p50", "p99", "paid by");
    for (const StepFigures& s : r.steps)
      out += printf_string("  %-32s %-10s %-10s %s\n", s.name.c_str(), format_ms(s.ms.p50).c_str(),
                           format_ms(s.ms.p99).c_str(), s.paid_by.c_str());
  }
  const GoalCheck c = check_goals(rs, r, g);
  out += printf_string(
      "goals: nodequake p50 <= %.0f ms: %s (worst %s); >= %.0fx the exec path: "
      "%s (worst %.1fx); idle RSS <= %.0f MiB: %s (%.1f MiB)\n",
      g.max_p50_ms, met(c.p50_met), format_ms(c.worst_p50).c_str(), g.min_ratio, met(c.ratio_met),
      c.worst_ratio, g.max_idle_rss_mib, met(c.rss_met), r.rss_idle.rss_mib());
  return out;
}

nlohmann::json to_json(const BenchReport& r, const Goals& g) {
  const std::vector<Row> rs = rows(r);
  nlohmann::json ops = nlohmann::json::array();
  for (const Row& row : rs)
    ops.push_back({{"name", row.name},
                   {"nodequake", summary_json(row.nodequake)},
                   {"exec", summary_json(row.exec)},
                   {"ratio_p50", row.ratio}});
  nlohmann::json steps = nlohmann::json::array();
  for (const StepFigures& s : r.steps)
    steps.push_back({{"name", s.name}, {"paid_by", s.paid_by}, {"ms", summary_json(s.ms)}});
  const GoalCheck c = check_goals(rs, r, g);
  return {
      {"runs", r.runs},
      {"warmup", r.warmup},
      {"check_every", r.check_every},
      {"kernel", r.kernel},
      {"cpus", r.cpus},
      {"journal", {{"dir", r.journal_dir}, {"fs", r.journal_fs}}},
      {"exec_spawn", r.exec_spawn},
      {"load_average", {{"start", r.load_before}, {"end", r.load_after}}},
      {"operations", std::move(ops)},
      {"agent_rss",
       {{"idle", memory_json(r.rss_idle)},
        {"after", memory_json(r.rss_after)},
        {"injections", r.injections}}},
      {"effect_checks",
       {{"nodequake", checks_json(r.nodequake_checks)}, {"exec", checks_json(r.exec_checks)}}},
      {"steps", std::move(steps)},
      {"goals",
       {{"max_p50_ms", g.max_p50_ms},
        {"p50_met", c.p50_met},
        {"worst_p50_ms", c.worst_p50},
        {"min_ratio", g.min_ratio},
        {"ratio_met", c.ratio_met},
        {"worst_ratio", c.worst_ratio},
        {"max_idle_rss_mib", g.max_idle_rss_mib},
        {"idle_rss_met", c.rss_met}}},
  };
}

}  // namespace nq::bench
