// cgroup membership and cgroupfs layout, for every runtime: which cgroups a
// process is in (/proc/PID/cgroup), where each hierarchy is mounted
// (/proc/self/mountinfo), and the absolute directory of a process's cgroup for
// one controller. Parsers take strings; the readers are thin.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/runtime.h"
#include "common/result.h"

namespace nq::runtime {

// "12:cpu,cpuacct:/kubepods/pod1/abc\n0::/init.scope\n" -> {"cpu,cpuacct": ..., "": ...}.
// Lines that are not "ID:CONTROLLERS:PATH" are skipped: the format is the
// kernel's and stable, and a reader must not fail on a future extension.
CgroupPaths parse_proc_cgroup(std::string_view text);
Result<CgroupPaths> read_proc_cgroup(pid_t pid, const std::filesystem::path& proc_root = "/proc");

// The path of `controller` ("memory", "name=systemd"; "" for the v2 unified
// tree) in `paths`, matching v1 keys by membership ("cpu" is in "cpu,cpuacct").
const std::string* find_cgroup_path(const CgroupPaths& paths, std::string_view controller);

// One mounted cgroup hierarchy.
struct CgroupMount {
  bool v2 = false;
  // v1: the controllers bound to the hierarchy ("cpu", "cpuacct",
  // "name=systemd"); v2: empty (which controllers v2 offers is in cgroup.controllers).
  std::set<std::string> controllers;
  // The hierarchy as /proc/PID/cgroup names it: controllers joined by ",", "" for v2.
  std::string key;
  std::filesystem::path mount_point;  // as seen in the mount namespace that was read
  std::string root;                   // the part of the hierarchy mounted there ("/" usually)
  bool operator==(const CgroupMount&) const = default;
};

struct CgroupMounts {
  std::vector<CgroupMount> mounts;  // one per hierarchy (bind mounts of the same one dropped)

  const CgroupMount* v1(std::string_view controller) const;
  const CgroupMount* unified() const;
  // No v1 hierarchy with a controller: a pure v2 (unified) host.
  bool pure_v2() const;
};

// Parses /proc/PID/mountinfo text, keeping the cgroup and cgroup2 mounts.
// A malformed line is an error naming its number.
Result<CgroupMounts> parse_mountinfo(std::string_view text);
Result<CgroupMounts> read_mountinfo(const std::filesystem::path& path = "/proc/self/mountinfo");

// The absolute directories of cgroups on a host whose cgroupfs may be visible
// under a prefix (the agent in a container sees the host's at /host/sys/fs/cgroup:
// host_root "/host" with the host's mountinfo).
class CgroupFs {
 public:
  explicit CgroupFs(CgroupMounts mounts, std::filesystem::path host_root = "/")
      : mounts_(std::move(mounts)), host_root_(std::move(host_root)) {}
  // Reads `<host_root>/<mountinfo>`; the default is our own view of the host.
  static Result<CgroupFs> discover(const std::filesystem::path& host_root = "/",
                                   const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

  const CgroupMounts& mounts() const noexcept { return mounts_; }
  const std::filesystem::path& host_root() const noexcept { return host_root_; }

  // Absolute directory of `path` (a path inside the hierarchy, as
  // /proc/PID/cgroup gives it) in `mount`. InvalidArgument when `path` lies
  // outside the part of the hierarchy that is mounted.
  Result<std::filesystem::path> dir(const CgroupMount& mount, std::string_view path) const;
  // Absolute directory of a process's cgroup for `controller` (v1, e.g.
  // "memory") or the unified tree (""). NotFound when that controller is not
  // mounted or the process is not in its hierarchy.
  Result<std::filesystem::path> dir_for(const CgroupPaths& paths,
                                        std::string_view controller) const;

 private:
  CgroupMounts mounts_;
  std::filesystem::path host_root_;
};

// The pids in a cgroup directory (cgroup.procs; v1 lists each process once too).
Result<std::vector<pid_t>> read_cgroup_procs(const std::filesystem::path& dir);

}  // namespace nq::runtime
