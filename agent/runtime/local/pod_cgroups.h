// The cgroups of a sandbox pod: <parent>/pod<uid>/<container> in every
// hierarchy the pod needs, with CPU and memory limits written the way the
// kubelet does (cfs quota + memory.limit_in_bytes on v1, cpu.max + memory.max
// on v2). A pure plan, then a thin executor writing cgroupfs.
//
// Why not libcgroup: evaluated on this hybrid host, cgroup_init() fills a
// process-wide mount table from /proc/mounts (global state, no host-root
// prefix for an agent in a container), and it registers cgroup2 only through
// the controllers listed in cgroup.controllers, so the empty unified hierarchy
// of a hybrid host is unreachable. cgroupfs is mkdir/write/rmdir, done here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/pods_file.h"
#include "common/result.h"

namespace nq::sandbox {

// The v1 controllers a pod must be in (its own cgroup in each), wherever they
// are mounted; on v2 the controllers to enable on the way down.
inline constexpr std::string_view kV1Controllers[] = {"cpu",  "cpuacct", "memory",
                                                      "pids", "freezer", "blkio"};
inline constexpr std::string_view kV2Controllers[] = {"cpu", "memory", "pids", "io"};
inline constexpr int64_t kCfsPeriodUs = 100'000;

// One hierarchy a pod joins.
struct Hierarchy {
  std::string key;  // as /proc/PID/cgroup names it ("cpu", "cpu,cpuacct"; "" for v2)
  bool v2 = false;
  std::filesystem::path dir;  // absolute directory of `root` in this hierarchy
  std::string root = "/";     // the hierarchy path `dir` shows
  // v1: the hierarchy's controllers; v2: those the root offers (cgroup.controllers).
  std::set<std::string> controllers;
  bool operator==(const Hierarchy&) const = default;
};

// Which hierarchies a pod joins: each v1 hierarchy holding one of
// kV1Controllers, plus the unified tree when mounted (hybrid or pure v2).
// `v2_controllers` is the content of the unified root's cgroup.controllers.
Result<std::vector<Hierarchy>> select_hierarchies(const runtime::CgroupFs& fs,
                                                  const std::set<std::string>& v2_controllers);
// The same, reading cgroup.controllers of the unified root.
Result<std::vector<Hierarchy>> discover_hierarchies(const runtime::CgroupFs& fs);

struct CgroupWrite {
  std::filesystem::path file;
  std::string value;
  bool operator==(const CgroupWrite&) const = default;
};

struct ContainerCgroups {
  runtime::CgroupPaths paths;     // as /proc/PID/cgroup will show it
  std::vector<std::string> dirs;  // absolute, one per hierarchy
};

struct PodCgroupPlan {
  std::vector<std::filesystem::path> mkdirs;  // parents first
  std::vector<CgroupWrite> writes;            // after the mkdirs, in order
  std::vector<std::string> pod_dirs;          // absolute, one per hierarchy
  std::vector<ContainerCgroups> containers;   // in spec order
};

struct ContainerLimits {
  std::string name;
  Limits limits;
};

// `parent` is a relative path ("nodequake"); the pod limit is the sum of its
// containers' when every container has one (as the kubelet does), and is
// written before theirs because v1 refuses a child quota above its parent's.
Result<PodCgroupPlan> plan_pod_cgroups(const std::vector<Hierarchy>& hierarchies,
                                       std::string_view parent, std::string_view uid,
                                       const std::vector<ContainerLimits>& containers);

// Leaf-first removal order for a pod's cgroups: containers, then the pod.
std::vector<std::string> removal_order(const std::vector<std::string>& pod_dirs,
                                       const std::vector<std::vector<std::string>>& container_dirs);

// --- executor (cgroupfs) ---

// mkdir (EEXIST is fine) and write, in plan order.
Status apply_cgroup_plan(const PodCgroupPlan& plan);

// SIGKILLs every process left in `dirs` (and their descendants' cgroups) until
// they are empty or `timeout` passes (then Unavailable naming the survivors).
Status kill_cgroup_processes(const std::vector<std::string>& dirs,
                             std::chrono::milliseconds timeout);

// rmdir each directory in order; ok when it does not exist. v1 refuses rmdir
// (EBUSY) while an exiting task is still attached, so it retries until `timeout`.
Status remove_cgroup_dirs(const std::vector<std::string>& dirs, std::chrono::milliseconds timeout);

// Writes "0" (the writer itself) to each <dir>/cgroup.procs through fds opened
// beforehand: async-signal-safe, for a child between fork() and exec().
// Returns 0 or the errno of the failing write.
int join_cgroups_after_fork(const int* procs_fds, size_t count) noexcept;

}  // namespace nq::sandbox
