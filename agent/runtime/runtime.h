// Where pods come from. The agent resolves targets through one Runtime: the
// local sandbox runtime (the embedded default) or, on a cluster, the node's
// CRI runtime. Both report pods the same way: labels, namespace, network
// namespace path, and per container a pid and its cgroup paths.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/result.h"

namespace nq::runtime {

// cgroup membership of one process, as /proc/PID/cgroup gives it: for each v1
// hierarchy its controllers (e.g. "cpu,cpuacct" or "name=systemd") map to the
// path inside that hierarchy; the v2 unified hierarchy is under the key "".
struct CgroupPaths {
  std::map<std::string, std::string> by_hierarchy;
  bool operator==(const CgroupPaths&) const = default;
};

struct ContainerInfo {
  std::string name;
  std::string id;
  pid_t pid = 0;  // 0 when the container is not running
  CgroupPaths cgroups;
};

struct PodInfo {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::map<std::string, std::string> labels;
  std::vector<std::string> ips;
  bool host_network = false;
  // Path of the pod's network namespace (empty with host networking).
  std::string netns_path;
  std::vector<ContainerInfo> containers;

  std::string key() const { return namespace_name + "/" + name; }
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  // "local", "containerd", "cri-o", ...
  virtual std::string name() const = 0;
  virtual std::string version() const = 0;
  // Every pod on this node, freshly resolved.
  virtual Result<std::vector<PodInfo>> list_pods() = 0;
  // One pod, freshly resolved; NotFound when it does not exist.
  virtual Result<PodInfo> get_pod(const std::string& namespace_name, const std::string& name) = 0;
};

}  // namespace nq::runtime
