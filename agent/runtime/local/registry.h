// The sandbox registry: one JSON file per pod under a state directory
// (default /run/nodequake/sandbox), the single source of truth for `nqctl
// sandbox down/list`, the shims and LocalRuntime.
//
// A record is written *before* any kernel object of its pod is created and
// removed after the last one is gone, so whatever a crash leaves behind is
// always named by a record and `down` can remove it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/local/pods_file.h"
#include "agent/runtime/runtime.h"
#include "common/fd.h"
#include "common/result.h"

namespace nq::sandbox {

inline constexpr const char* kDefaultStateDir = "/run/nodequake/sandbox";
inline constexpr const char* kStateDirEnv = "NQ_SANDBOX_STATE_DIR";

struct ContainerRecord {
  std::string name;
  std::string id;
  std::vector<std::string> argv;  // resolved: argv[0] is an absolute path
  Limits limits;
  int readiness_port = 0;       // 0: no readiness probe
  pid_t pid = 0;                // 0 while not running
  uint64_t pid_start_time = 0;  // /proc/PID/stat starttime: tells a reused pid apart
  int restart_count = 0;
  std::string last_exit;  // "exit code 1", "signal 9 (Killed)", "exec: ..."
  // Membership as /proc/PID/cgroup will show it: hierarchy key -> path.
  runtime::CgroupPaths cgroups;
  // The same cgroups as absolute directories, one per hierarchy.
  std::vector<std::string> cgroup_dirs;
  bool operator==(const ContainerRecord&) const = default;
};

struct PodRecord {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::map<std::string, std::string> labels;
  bool host_network = false;
  std::string netns_path;  // empty with hostNetwork
  std::vector<std::string> ips;
  std::string ip_cidr;                   // the pod address with its prefix ("10.213.0.2/24")
  std::string host_veth;                 // host side of the veth pair
  std::string bridge;                    // the bridge the host side is enslaved to
  std::string cgroup_parent;             // "nodequake"
  std::vector<std::string> cgroup_dirs;  // the pod cgroup, one per hierarchy
  pid_t shim_pid = 0;
  uint64_t shim_start_time = 0;
  std::string log_path;
  std::vector<ContainerRecord> containers;

  std::string key() const { return namespace_name + "/" + name; }
  bool operator==(const PodRecord&) const = default;
};

std::string to_json(const PodRecord& rec);
// `origin` names the source (a file) in errors.
Result<PodRecord> pod_from_json(std::string_view text, std::string_view origin);

// An exclusive lock on the registry (flock on <dir>/.lock), held by `up` and
// `down` while they allocate addresses and create or remove shared objects.
class RegistryLock {
 public:
  RegistryLock() = default;
  explicit RegistryLock(UniqueFd fd) : fd_(std::move(fd)) {}

 private:
  UniqueFd fd_;  // closing it releases the flock
};

class Registry {
 public:
  explicit Registry(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& dir() const noexcept { return dir_; }

  // Creates the directory (0700) if needed.
  Status ensure_dir() const;
  Result<RegistryLock> lock() const;

  std::filesystem::path file_for(std::string_view ns, std::string_view name) const;
  // Atomically replaces the pod's file (write to a temporary, fsync, rename).
  Status put(const PodRecord& rec) const;
  // NotFound when there is no such pod.
  Result<PodRecord> get(std::string_view ns, std::string_view name) const;
  // Every record, sorted by namespace/name; an unreadable file is an error
  // naming it. A missing directory is an empty registry.
  Result<std::vector<PodRecord>> list() const;
  // Removes the pod's file and any temporary left by an interrupted put; ok if absent.
  Status remove(std::string_view ns, std::string_view name) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace nq::sandbox
