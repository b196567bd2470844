// The benchmark's figures and their two renderings: a table for people and
// JSON for machines. Pure: everything here is computed from the samples.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/proc_memory.h"
#include "common/traffic.h"

namespace nq::bench {

// snprintf into a string: one line of a table (at most 511 bytes).
template <typename... Args>
std::string printf_string(const char* fmt, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), fmt, args...);
  return buf;
}

// KiB, as /proc reports memory, in MiB.
inline double mib(uint64_t kib) {
  return static_cast<double>(kib) / 1024.0;
}

// One operation ("partition apply", ...), both ways, in milliseconds.
struct OperationSamples {
  std::string name;
  std::vector<double> nodequake_ms;
  std::vector<double> exec_ms;
};

// Effect checks of one installer: passed / total, and the first failures.
struct CheckTally {
  int passed = 0;
  int total = 0;
  std::vector<std::string> failures;
  void record(bool ok, const std::string& what);
  bool all_passed() const { return passed == total; }
};

// One step an agent RPC is made of, timed on its own (see steps.h).
struct StepFigures {
  std::string name;
  std::string paid_by;  // which RPCs pay it, e.g. "apply, first fault on the pod"
  traffic::Summary ms;
};

struct Goals {
  double max_p50_ms = 2.0;
  double min_ratio = 10.0;
  double max_idle_rss_mib = 15.0;
};

struct BenchReport {
  int runs = 0;
  int warmup = 0;
  int check_every = 0;
  std::string kernel;
  int cpus = 0;
  std::string journal_dir;
  std::string journal_fs;  // "ext4", "tmpfs", ...
  std::string exec_spawn = "posix_spawn";
  double load_before = 0;  // 1-minute load average when the runs started and ended:
  double load_after = 0;   // other work on the machine shows in every figure
  std::vector<OperationSamples> operations;
  ProcMemory rss_idle;
  ProcMemory rss_after;
  int injections = 0;  // Apply RPCs between the two RSS readings
  CheckTally nodequake_checks;
  CheckTally exec_checks;
  std::vector<StepFigures> steps;  // empty when not measured
};

// exec p50 / nodequake p50 (0 when there is no nodequake sample).
double ratio_p50(const traffic::Summary& nodequake, const traffic::Summary& exec);

// "0.41 ms", "12.3 ms".
std::string format_ms(double ms);

std::string render_table(const BenchReport& report, const Goals& goals);
nlohmann::json to_json(const BenchReport& report, const Goals& goals);

}  // namespace nq::bench
