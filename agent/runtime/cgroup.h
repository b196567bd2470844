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
  std::vector<CgroupMount> mounts;  // one per hierarchy (see parse_mountinfo for which)

  const CgroupMount* v1(std::string_view controller) const;
  const CgroupMount* unified() const;
  // No v1 hierarchy with a controller: a pure v2 (unified) host.
  bool pure_v2() const;
};

// Parses /proc/PID/mountinfo text, keeping the cgroup and cgroup2 mounts.
// A malformed line is an error naming its number.
//
// A hierarchy may be mounted several times: a container's own view of its
// cgroup (runc binds the container's directory, so the mount's root is
// "/kubepods/.../<id>") next to the host's whole cgroupfs that a DaemonSet
// mounts at /host/sys/fs/cgroup or over /sys/fs/cgroup (root "/"). Per
// hierarchy the one kept is, in this order: the one exposing the most of the
// hierarchy (fewest components in its root: only that one holds other pods'
// cgroups); then one under `prefer_under` (the host root the operator named);
// then the later one at the same mount point (a later mount there hides the
// earlier); else the first.
Result<CgroupMounts> parse_mountinfo(std::string_view text,
                                     const std::filesystem::path& prefer_under = "/");
Result<CgroupMounts> read_mountinfo(const std::filesystem::path& path = "/proc/self/mountinfo",
                                    const std::filesystem::path& prefer_under = "/");

// Moves the calling thread into the cgroup namespace of `init_pid` (the host's
// init when the agent runs with hostPID) when it is not there already, and
// says which it did. In a private cgroup namespace (the default for
// containers on cgroup v2) /proc/PID/cgroup shows other pods' cgroups
// relative to the agent's own, as "/../../kubepods/...", which no mount can
// resolve. Call it before any thread starts: namespaces are per thread and
// only threads created afterwards inherit it. Needs CAP_SYS_ADMIN.
enum class CgroupNamespace { kAlreadyShared, kJoined };
Result<CgroupNamespace> join_cgroup_namespace_of(pid_t init_pid = 1);

// The absolute directories of cgroups. `mounts` come from the mount table of
// some mount namespace whose / we see at `prefix`: "/" for our own table,
// which is what discover() reads.
class CgroupFs {
 public:
  explicit CgroupFs(CgroupMounts mounts, std::filesystem::path prefix = "/")
      : mounts_(std::move(mounts)), prefix_(std::move(prefix)) {}
  // Our own mount table (`mountinfo`, read as given), preferring mounts
  // under `host_root` (see parse_mountinfo). Our own table rather than the
  // host's (/host/proc/1/mountinfo): its mount points are paths we can open
  // wherever the DaemonSet put the host's cgroupfs, it lists the mounts'
  // roots, and reading it needs no ptrace rights over the host's init.
  static Result<CgroupFs> discover(const std::filesystem::path& host_root = "/",
                                   const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

  const CgroupMounts& mounts() const noexcept { return mounts_; }
  const std::filesystem::path& prefix() const noexcept { return prefix_; }

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
  std::filesystem::path prefix_;
};

// The pids in a cgroup directory (cgroup.procs; v1 lists each process once too).
Result<std::vector<pid_t>> read_cgroup_procs(const std::filesystem::path& dir);

}  // namespace nq::runtime
