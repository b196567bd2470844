// The process faults: container_kill and pod_kill (SIGKILL to every process of
// the containers' cgroups; the runtime restarts them) and pod_failure (the
// containers' cgroups frozen until revert).
//
// Kills are one-shot: nothing to revert, but the v1 kill freezes the cgroup
// for a moment, and that freeze is journaled like pod_failure's so a crash in
// between cannot leave the container frozen.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/core/backend.h"
#include "agent/process/freezer.h"
#include "agent/runtime/cgroup.h"

namespace nq::process {

struct ProcessFaultsOptions {
  // How long a freeze may take before the fault fails (a task in an
  // uninterruptible sleep keeps a v1 cgroup FREEZING).
  std::chrono::milliseconds freeze_timeout{5000};
  // How long killed processes may take to leave their cgroup.
  std::chrono::milliseconds kill_timeout{5000};
};

class ProcessFaults final : public core::WorkloadBackend {
 public:
  ProcessFaults(core::RecordSink sink, runtime::CgroupFs cgroups,
                ProcessFaultsOptions options = {});

  std::vector<core::FaultKind> kinds() const override;
  Result<core::Details> apply(const std::string& id, const core::WorkloadFault& fault,
                              const runtime::PodInfo& pod,
                              const std::vector<runtime::ContainerInfo>& containers) override;
  Status revert(const std::string& id) override;
  core::Details observe(const std::string& id) const override;
  Status reconcile(const nodequake::v1::journal::ResourceOwned& resource) override;
  void release_all() override;

 private:
  struct Frozen {
    std::string key;
    std::string container;
    FreezerCgroup cgroup;
  };

  Result<core::Details> kill(const std::string& id, core::FaultKind kind,
                             const std::vector<runtime::ContainerInfo>& containers);
  // Kills one container's processes; returns how many got SIGKILL.
  Result<size_t> kill_container(const std::string& id, core::FaultKind kind,
                                const runtime::ContainerInfo& c, std::string& method);
  Result<core::Details> freeze_pod(const std::string& id,
                                   const std::vector<runtime::ContainerInfo>& containers);
  Status journal_frozen(const std::string& key, const std::string& id, core::FaultKind kind,
                        const FreezerCgroup& cg);
  Status journal_released(const std::string& key);
  // Thaws and releases each entry; the first error, after trying all.
  Status thaw_all(const std::vector<Frozen>& frozen);

  core::RecordSink sink_;
  runtime::CgroupFs cgroups_;
  ProcessFaultsOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Frozen>> frozen_;  // pod_failure injections by id
};

}  // namespace nq::process
