// What the stress node tests share: a sandbox of the test's own with pods
// whose limits the test sets, the container's CPU and memory accounting read
// by the test itself (never through the agent's code), and checks that a
// stressor pid is gone.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/runtime/local/pods_file.h"
#include "agent/runtime/runtime.h"
#include "common/result.h"
#include "tests/support/sandbox_env.h"

namespace nq::stress::testing {

// A pod "main" container with these limits (nullopt = none) running `command`
// (empty: nq-echo, idle).
sandbox::PodSpec limited_pod(const nq::testing::SandboxEnv& env, const std::string& name,
                             std::optional<int64_t> cpu_millis, std::optional<int64_t> memory_bytes,
                             std::vector<std::string> command = {});

// The container's cumulative CPU time (v1 cpuacct.usage, v2 cpu.stat
// usage_usec) and memory usage (memory.usage_in_bytes / memory.current).
Result<uint64_t> cgroup_cpu_ns(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c);
Result<uint64_t> cgroup_memory_bytes(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c);

// Percent of `limit_cpus` the container used over `window`, measured from its
// cgroup's accounting.
Result<double> measure_cpu_percent(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c,
                                   double limit_cpus, std::chrono::milliseconds window);

// Raises the CPU weight (v1 cpu.shares, v2 cpu.weight) of the container's
// cgroup and of its parents up to and including the sandbox's own parent
// (`cgroup_parent`, the test's), so the machine's other work (parallel
// builds on 2 cores) does not starve the container: the tests measure the
// loop's accuracy when the CPU is there to take, as it is for a pod whose
// node is not overcommitted.
Status prioritize_cpu(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c,
                      const std::string& cgroup_parent);

// utime + stime of a process (all its threads), in seconds.
Result<double> process_cpu_seconds(pid_t pid);

// True when no running process has this pid (or it is a zombie).
bool pid_gone(pid_t pid);
// Waits up to `timeout` for pid_gone.
bool wait_pid_gone(pid_t pid, std::chrono::milliseconds timeout);

// "" when the machine's other load leaves room for a 1-CPU container to run
// near its limit, else a description of the load (for failure messages).
std::string machine_load();

}  // namespace nq::stress::testing
