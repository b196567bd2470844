// The fan-out benchmark's figures (nq-bench-fanout) and their two renderings:
// a table for people and JSON for machines. Pure: everything here is computed
// from the samples, so it is unit-tested without root.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/traffic.h"

namespace nq::bench {

// One measured run (milliseconds).
struct FanoutRun {
  // Submit until the controller reports the experiment Running with all N
  // injections applied (every agent acknowledged its Apply).
  double apply_all_acked_ms = 0;
  double submit_ms = 0;     // the Submit RPC (or the nqctl process) alone
  double selecting_ms = 0;  // submit until the phase left "selecting" (as polled)
  // POST /v1/killswitch until its answer (every agent's outcome, or its
  // 800 ms deadline for the agents that had not answered yet).
  double killswitch_ms = 0;
  // POST until every agent's List shows nothing left and its kill switch
  // engaged: the answer when it was complete, else polled after it.
  double all_reverted_ms = 0;
  double agents_late = 0;               // agents past the controller's kill-switch deadline
  double killswitch_controller_ms = 0;  // the controller's own took_ms
  double slowest_agent_ms = 0;          // the slowest agent's RevertAll (took_ms)
  double release_ms = 0;                // DELETE /v1/killswitch
};

// Memory of a group of processes, summed (KiB). PSS splits each shared page
// between the processes mapping it, so a sum of PSS is what the group costs
// the machine; a sum of RSS counts the shared libraries once per process.
struct GroupMemory {
  int processes = 0;
  uint64_t rss_kib = 0;
  uint64_t pss_kib = 0;
  uint64_t anon_kib = 0;
};

// utime + stime of /proc/PID/stat (fields 14 and 15), in clock ticks;
// InvalidArgument when the text has no such fields.
Result<uint64_t> parse_stat_cpu_ticks(std::string_view text);

// The "Pss:" line of /proc/PID/smaps_rollup, in KiB; InvalidArgument naming
// the field when it is missing.
Result<uint64_t> parse_smaps_rollup_pss(std::string_view text);

struct FanoutGoals {
  double max_ms = 1000;  // both apply-all-acked and kill switch (all reverted), at p99
};

struct FanoutReport {
  int agents = 0;
  int runs = 0;
  int warmup = 0;
  std::string submit_via;  // "api" or "nqctl"
  std::string fault;       // e.g. "bandwidth 1 Mbit/s egress, mode all"
  std::string kernel;
  int cpus = 0;
  double load_before = 0, load_after = 0;
  double setup_s = 0;           // pods, agents and controller up
  std::vector<FanoutRun> cold;  // the warm-up runs (the first pays TLS handshakes)
  std::vector<FanoutRun> measured;
  GroupMemory agents_memory;  // after the runs
  GroupMemory controller_memory;
  // CPU time (user + system) per measured run, summed over the agents and of
  // the controller: on a machine with few cores the agents' CPU bounds the
  // fan-out, whatever the controller does.
  double agents_cpu_ms_per_run = 0;
  double controller_cpu_ms_per_run = 0;
  // Agents whose List was checked after every apply and kill switch, and the
  // sampled pods whose qdiscs were checked in the kernel.
  int verified_agents = 0;
  int verified_pods = 0;
  int verifications = 0;  // checks done in total (all passed, or the run failed)
};

// Column `pick` of every run.
std::vector<double> column(const std::vector<FanoutRun>& runs, double FanoutRun::*pick);

// p99 of both headline figures within the goal.
bool goal_met(const FanoutReport& report, const FanoutGoals& goals);

std::string render_fanout_table(const FanoutReport& report, const FanoutGoals& goals);
nlohmann::json fanout_to_json(const FanoutReport& report, const FanoutGoals& goals);

}  // namespace nq::bench
