// Pure parsers and arithmetic for the stress backend: the container's CPU and
// memory limits and usage as cgroupfs prints them (v1 and v2), usage rates,
// and the closed loop's step function. No kernel access here; the readers in
// cgroup_reader.h feed these with file contents.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq::stress {

// A CFS bandwidth limit. `quota_us` empty: unlimited.
struct CpuLimit {
  std::optional<int64_t> quota_us;
  int64_t period_us = 100'000;
  // The limit in CPUs (quota / period); `node_cpus` when unlimited.
  double cpus(unsigned node_cpus) const {
    return quota_us ? static_cast<double>(*quota_us) / static_cast<double>(period_us)
                    : static_cast<double>(node_cpus);
  }
  bool operator==(const CpuLimit&) const = default;
};

// v2 cpu.max: "max 100000" or "50000 100000".
Result<CpuLimit> parse_cpu_max(std::string_view text);
// v1 cpu.cfs_quota_us ("-1" = unlimited) and cpu.cfs_period_us.
Result<CpuLimit> parse_cfs(std::string_view quota_text, std::string_view period_text);

// A memory limit; empty when unlimited.
using MemoryLimit = std::optional<uint64_t>;
// v2 memory.max ("max" or bytes) and v1 memory.limit_in_bytes (unlimited is
// PAGE_COUNTER_MAX rounded to pages, 9223372036854771712 on x86-64, which is
// not a limit anyone sets: anything at or above 2^62 counts as unlimited).
Result<MemoryLimit> parse_memory_limit(std::string_view text);

// One unsigned integer file (cpuacct.usage, memory.usage_in_bytes, memory.current).
Result<uint64_t> parse_u64(std::string_view text, std::string_view what);
// v2 cpu.stat: the usage_usec line, in microseconds.
Result<uint64_t> parse_cpu_stat_usage_usec(std::string_view text);

// Cumulative CPU time of a cgroup at one moment.
struct UsageSample {
  std::chrono::steady_clock::time_point at;
  uint64_t usage_ns = 0;
};
// CPUs used on average between two samples (1.0 = one CPU busy the whole
// time). nullopt when `b` is not later than `a` or the counter went backwards
// (a cgroup recreated under the same path).
std::optional<double> usage_rate(const UsageSample& a, const UsageSample& b);

// The closed loop: the cgroup's usage is the workload's own plus
// workers * duty (as long as the quota does not throttle), so an integral
// step on the error in CPUs, spread over the workers, converges for
// 0 < gain < 2 whatever the workload uses; 0.5 halves the error each step and
// damps the measurement noise of short windows. The result is clamped to
// [0, 1], which is also the anti-windup: at a 100 % target the quota caps the
// usage and the duty simply stays at 1.
double next_duty(double duty, double target_cpus, double measured_cpus, uint32_t workers,
                 double gain);

// Workers when the request leaves it open: one per CPU of the limit, rounded up.
uint32_t default_workers(double limit_cpus);

// "1 CPU", "0.5 CPU", "2 CPUs": how a limit is shown in Details.
std::string format_cpus(double cpus);
// "256Mi", "1.5Gi", "1000 bytes".
std::string format_bytes(uint64_t bytes);

}  // namespace nq::stress
