#include "agent/runtime/local/local_runtime.h"

#include <spdlog/spdlog.h>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/process.h"
#include "common/netns.h"

namespace nq::sandbox {

#ifndef NQ_VERSION
#define NQ_VERSION "unknown"
#endif

std::string LocalRuntime::version() const {
  return NQ_VERSION;
}

Result<runtime::PodInfo> LocalRuntime::resolve(const PodRecord& rec) const {
  runtime::PodInfo pod;
  pod.namespace_name = rec.namespace_name;
  pod.name = rec.name;
  pod.uid = rec.uid;
  pod.labels = rec.labels;
  pod.ips = rec.ips;
  pod.host_network = rec.host_network;
  pod.netns_path = rec.netns_path;
  if (!rec.host_network) {
    if (auto ns = Netns::open(rec.netns_path); !ns.ok())
      return Error::not_found("sandbox pod " + rec.key() + ": netns " + rec.netns_path +
                              " is gone (" + ns.error().message() + ")");
  }
  for (const ContainerRecord& c : rec.containers) {
    runtime::ContainerInfo info;
    info.name = c.name;
    info.id = c.id;
    info.cgroups = c.cgroups;  // where it will run while it is restarting
    if (process_alive(c.pid, c.pid_start_time, opts_.proc_root)) {
      // The kernel's word on where the process is, not the plan's.
      if (auto paths = runtime::read_proc_cgroup(c.pid, opts_.proc_root); paths.ok()) {
        info.pid = c.pid;
        info.cgroups = std::move(*paths);
      }
    }
    pod.containers.push_back(std::move(info));
  }
  return pod;
}

Result<std::vector<runtime::PodInfo>> LocalRuntime::list_pods() {
  NQ_ASSIGN_OR_RETURN(std::vector<PodRecord> records, registry_.list());
  std::vector<runtime::PodInfo> pods;
  for (const PodRecord& rec : records) {
    auto pod = resolve(rec);
    if (!pod.ok()) {
      if (pod.error().status_code() == Code::kNotFound) {
        spdlog::warn("{}", pod.error().message());
        continue;
      }
      return std::move(pod).error();
    }
    pods.push_back(std::move(*pod));
  }
  return pods;
}

Result<runtime::PodInfo> LocalRuntime::get_pod(const std::string& namespace_name,
                                               const std::string& name) {
  NQ_ASSIGN_OR_RETURN(PodRecord rec, registry_.get(namespace_name, name));
  return resolve(rec);
}

}  // namespace nq::sandbox
