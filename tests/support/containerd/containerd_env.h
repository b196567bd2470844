// A real containerd of the test's own: its own root, state and socket under
// a temp dir, the CRI plugin with the cgroupfs driver and a CNI bridge on a
// private range, images built here (a static pause and busybox-static) and
// imported with ctr. Pods are made through CRI like a kubelet would.
//
// Everything is torn down by the destructor, also when a test fails: every
// pod, containerd (by pid) and the shims it started, the bridge, leftover
// pod network namespaces, the cgroup parent in every hierarchy, mounts under
// the temp dir, CNI caches, the temp dir itself.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "cri/runtime_v1.grpc.pb.h"

namespace nq::testing {

namespace criv1 = ::runtime::v1;

struct ContainerdOptions {
  std::filesystem::path containerd = "/usr/bin/containerd";
  std::filesystem::path ctr = "/usr/bin/ctr";
  std::filesystem::path runc = "/usr/sbin/runc";
  std::filesystem::path cni_bin_dir = "/usr/lib/cni";
  std::filesystem::path busybox = "/bin/busybox";
  std::filesystem::path pause;  // the static pause binary this build made
  std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

struct ContainerSpec {
  std::string name = "app";
  std::vector<std::string> args = {"sleep", "3600"};  // busybox applet + args
  // CFS quota in microseconds per 100 ms period; 0 = no CPU limit.
  int64_t cpu_quota_us = 0;
  int64_t memory_limit_bytes = 0;
};

struct PodSpec {
  std::string namespace_name = "default";
  std::string name;
  std::map<std::string, std::string> labels;
  bool host_network = false;
  std::vector<ContainerSpec> containers = {ContainerSpec{}};
};

struct PodHandle {
  std::string sandbox_id;
  std::vector<std::string> container_ids;
};

class ContainerdEnv {
 public:
  // FailedPrecondition naming what is missing when containerd, ctr, runc or
  // the CNI plugins are not installed (scripts/install-deps.sh test).
  static Result<std::unique_ptr<ContainerdEnv>> start(ContainerdOptions opts);
  ~ContainerdEnv();
  ContainerdEnv(const ContainerdEnv&) = delete;
  ContainerdEnv& operator=(const ContainerdEnv&) = delete;

  const std::filesystem::path& socket() const { return socket_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& subnet() const { return subnet_; }  // "10.234.N.0/24"
  const std::string& cgroup_parent() const { return cgroup_parent_; }
  pid_t pid() const { return pid_; }
  criv1::RuntimeService::Stub& cri() { return *stub_; }
  static constexpr const char* kBusyboxImage = "nq.local/busybox:1";
  static constexpr const char* kPauseImage = "nq.local/pause:1";

  // RunPodSandbox, then CreateContainer + StartContainer for each container.
  Result<PodHandle> run_pod(const PodSpec& spec);
  // StopPodSandbox + RemovePodSandbox (its containers go with it).
  Status remove_pod(const std::string& sandbox_id);
  // What a kubelet does when a container dies and is restarted: StopContainer
  // (SIGKILL, no grace), RemoveContainer, then CreateContainer with the same
  // config and the next attempt number, StartContainer. The new container's id.
  Result<std::string> restart_container(const std::string& sandbox_id,
                                        const std::string& container_id);
  // Every sandbox this containerd knows.
  Result<std::vector<criv1::PodSandbox>> list_sandboxes();
  // The IP the CNI gave the pod.
  Result<std::string> pod_ip(const std::string& sandbox_id);

  // Stops containerd (SIGTERM, waited for) and starts it again on the same
  // root: pods keep running under their shims meanwhile, as on a node.
  Status stop_daemon();
  Status start_daemon();

  // Gives the pods' parent cgroup 10x the default CPU weight (v1
  // cpu.shares, v2 cpu.weight), so CPU measurements in pods hold up next to
  // a parallel build on a 2-core machine. Needs a pod to exist (runc makes
  // the parent on the first container).
  Status prioritize_cpu();

  std::string log_tail(size_t bytes = 3000) const;

 private:
  explicit ContainerdEnv(ContainerdOptions opts);
  Status setup();
  Status write_config();
  Status build_and_import_images();
  Status run_tool(const std::vector<std::string>& argv, const std::string& what);
  void teardown() noexcept;
  std::unique_ptr<grpc::ClientContext> ctx(std::chrono::seconds timeout = std::chrono::seconds(60));

  ContainerdOptions opts_;
  std::filesystem::path dir_;
  std::filesystem::path socket_;
  std::string suffix_;  // pid-based, unique per run
  std::string bridge_;
  std::string network_;
  std::string subnet_;
  std::string gateway_;
  std::string cgroup_parent_;
  pid_t pid_ = -1;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<criv1::RuntimeService::Stub> stub_;
  std::vector<std::string> netns_paths_;  // every pod netns seen, removed at the end
  // What restart_container recreates a container from.
  struct PodConfigs {
    criv1::PodSandboxConfig sandbox;
    std::map<std::string, criv1::ContainerConfig> containers;  // by container id
  };
  std::map<std::string, PodConfigs> configs_;  // by sandbox id
};

}  // namespace nq::testing
