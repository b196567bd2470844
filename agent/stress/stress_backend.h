// CPU and memory stress (fault kinds cpu_stress, memory_stress): one
// nq-stressor per target container, placed in the container's cgroups before
// it runs, journaled (ResourceOwned with its pid, start time and boot id)
// before it is let go, killed and reaped on revert.
//
// CPU stress is a closed loop: one thread for the whole backend samples each
// target cgroup's own CPU accounting a few times per second and moves the
// stressor's duty cycle (in a page it shares with the stressor) until the
// cgroup's total usage, workload plus stressor, is the requested share of the
// container's limit. Memory stress holds the requested bytes, touched, with
// the stressor as the OOM killer's first choice.
//
// A stressor belongs to one container instance. When that container's main
// process exits -- the kubelet restarting it (a new container, new cgroup,
// same pod) or stopping it -- the stressor is killed and the injection
// reports the stress lost; the new container is not stressed (docs/stress.md).
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/core/backend.h"
#include "agent/runtime/cgroup.h"
#include "agent/stress/container_watch.h"
#include "agent/stress/limits.h"
#include "agent/stress/stressor_process.h"

namespace nq::stress {

struct StressOptions {
  std::filesystem::path stressor;  // the nq-stressor binary
  // The loop's sampling period. The CFS period is 100 ms, so a window of a
  // few periods sees the quota's throttling averaged out.
  std::chrono::milliseconds interval{250};
  double gain = 0.5;  // see next_duty()
  // How long a memory stressor may take to touch its pages.
  std::chrono::milliseconds ready_timeout{30'000};
  std::chrono::milliseconds kill_timeout{5'000};
  unsigned node_cpus = 0;  // 0: the online CPUs
};

// Where one container's stress goes and what it is measured against.
struct ContainerCgroups {
  bool v2 = false;
  std::filesystem::path cpu_dir;                  // v1 cpu hierarchy, or the v2 cgroup
  std::filesystem::path cpuacct_dir;              // v1 cpuacct hierarchy, or the v2 cgroup
  std::filesystem::path memory_dir;               // v1 memory hierarchy, or the v2 cgroup
  std::vector<std::filesystem::path> join_procs;  // see SpawnRequest
  std::filesystem::path v2_dir;                   // pure v2: CLONE_INTO_CGROUP
};
Result<ContainerCgroups> locate_cgroups(const runtime::CgroupFs& fs,
                                        const runtime::ContainerInfo& container);

// Readers of the container's limits and usage (v1 or v2 files).
Result<CpuLimit> read_cpu_limit(const ContainerCgroups& cg);
Result<uint64_t> read_cpu_usage_ns(const ContainerCgroups& cg);
Result<MemoryLimit> read_memory_limit(const ContainerCgroups& cg);
Result<uint64_t> read_memory_usage(const ContainerCgroups& cg);

class StressBackend final : public core::WorkloadBackend {
 public:
  // `sink` appends to the agent's journal. Starts the control thread.
  static Result<std::unique_ptr<StressBackend>> create(runtime::CgroupFs cgroups,
                                                       core::RecordSink sink,
                                                       StressOptions options);
  // Stops the loop; stressors still running are killed (their journal
  // records stay, and the next start finds them gone).
  ~StressBackend() override;
  StressBackend(const StressBackend&) = delete;
  StressBackend& operator=(const StressBackend&) = delete;

  std::vector<core::FaultKind> kinds() const override;
  Result<core::Details> apply(const std::string& id, const core::WorkloadFault& fault,
                              const runtime::PodInfo& pod,
                              const std::vector<runtime::ContainerInfo>& containers) override;
  Status revert(const std::string& id) override;
  core::Details observe(const std::string& id) const override;
  std::vector<StressLoad> loads(const std::string& id) const override;
  Status reconcile(const nodequake::v1::journal::ResourceOwned& resource) override;
  void release_all() override;

 private:
  struct Target;
  struct Injection;

  StressBackend(runtime::CgroupFs cgroups, core::RecordSink sink, StressOptions options,
                std::string boot_id);
  Result<std::unique_ptr<Target>> start_cpu(const std::string& id, const core::CpuStress& spec,
                                            const runtime::ContainerInfo& container);
  Result<std::unique_ptr<Target>> start_memory(const std::string& id,
                                               const core::MemoryStress& spec,
                                               const runtime::ContainerInfo& container);
  // Spawns the stressor, journals it, and lets it go.
  Status launch(Target& t, const std::string& id, core::FaultKind kind,
                std::vector<std::string> args);
  Status stop_target(Target& t);
  // The target container's main process exited: stop its stressor, say why.
  void end_with_container(const std::string& id, Target& t);
  void loop();
  void tick();

  runtime::CgroupFs cgroups_;
  core::RecordSink sink_;
  StressOptions options_;
  std::string boot_id_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::map<std::string, Injection> active_;
  std::thread thread_;
};

}  // namespace nq::stress
