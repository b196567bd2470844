// The "local" runtime: sandbox pods from the registry, resolved like real
// pods. Every call re-reads the registry and the kernel: the netns path must
// still be a network namespace, and each running container's cgroups come
// from /proc/PID/cgroup of its current pid (the shim keeps that pid current).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "agent/runtime/local/registry.h"
#include "agent/runtime/runtime.h"

namespace nq::sandbox {

class LocalRuntime final : public runtime::Runtime {
 public:
  struct Options {
    std::filesystem::path state_dir = kDefaultStateDir;
    std::filesystem::path proc_root = "/proc";
  };
  explicit LocalRuntime(Options opts) : opts_(std::move(opts)), registry_(opts_.state_dir) {}

  std::string name() const override { return "local"; }
  std::string version() const override;
  // Pods whose netns has vanished are not live pods and are left out.
  Result<std::vector<runtime::PodInfo>> list_pods() override;
  // NotFound for an unknown pod or one whose netns has vanished.
  Result<runtime::PodInfo> get_pod(const std::string& namespace_name,
                                   const std::string& name) override;

  // The PodInfo of one record, verified against the kernel.
  Result<runtime::PodInfo> resolve(const PodRecord& rec) const;

 private:
  Options opts_;
  Registry registry_;
};

}  // namespace nq::sandbox
