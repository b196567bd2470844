// The "cri" runtime: pods from the node's container runtime over its CRI
// socket (containerd, k3s' containerd, CRI-O). Every call asks the runtime
// afresh -- labels, IPs and pids change under us -- and reads each running
// container's cgroups from /proc/PID/cgroup, the kernel's word rather than
// the runtime's plan.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "agent/runtime/cri/pod_mapping.h"
#include "agent/runtime/runtime.h"
#include "common/result.h"
#include "cri/runtime_v1.grpc.pb.h"

namespace grpc {
class Channel;
}

namespace nq::cri {

class CriRuntime final : public runtime::Runtime {
 public:
  struct Options {
    // Unix socket path; "" = the first well-known one under host_root.
    std::string socket;
    PathRoots roots;
    // Per RPC. A runtime that does not answer in time makes a resolve fail
    // (Unavailable/DeadlineExceeded) instead of hanging an Apply.
    std::chrono::milliseconds timeout{std::chrono::seconds(10)};
    // Pods resolved at once by list_pods (each one PodSandboxStatus, then
    // its containers' ContainerStatus); 1 = one after the other.
    size_t parallel_pods = 8;
  };

  // Connects and asks Version (so a wrong socket fails at start, not at the
  // first Apply). Unavailable when nothing answers.
  static Result<std::unique_ptr<CriRuntime>> connect(Options opts);

  // From Version: "containerd", "cri-o", ... and its version.
  std::string name() const override { return name_; }
  std::string version() const override { return version_; }
  const std::filesystem::path& socket() const noexcept { return socket_; }

  // Ready sandboxes only: a stopped sandbox has no network namespace and
  // no processes left to fault. A sandbox that vanishes while it is being
  // resolved is left out. Up to Options::parallel_pods pods are resolved at
  // once; the result is in the runtime's order either way.
  Result<std::vector<runtime::PodInfo>> list_pods() override;
  // The ready sandbox with that namespace and name (the newest if the
  // runtime reports several attempts); NotFound otherwise.
  Result<runtime::PodInfo> get_pod(const std::string& namespace_name,
                                   const std::string& name) override;

 private:
  CriRuntime(Options opts, std::filesystem::path socket, std::shared_ptr<grpc::Channel> channel);

  Result<std::vector<criv1::PodSandbox>> ready_sandboxes();
  Result<std::vector<criv1::Container>> containers(const std::string& sandbox_id);
  Result<runtime::PodInfo> resolve(const criv1::PodSandbox& sandbox,
                                   const std::vector<criv1::Container>& containers);
  std::unique_ptr<grpc::ClientContext> context() const;

  Options opts_;
  std::filesystem::path socket_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<criv1::RuntimeService::Stub> stub_;
  std::string name_;
  std::string version_;
};

}  // namespace nq::cri
