// The io_errno backend of the injection manager: one ioerrno config per
// target container, keyed by the container's cgroup v2 id, in one BPF LSM
// object the backend loads on first use and attaches while any injection
// needs it.
//
// Crash safety by construction: the programs' links are held by the agent
// process only, so a killed agent takes the fault with it. Each config is
// still journaled (ResourceOwned{kind "io_errno", bpf}) before it is set, so
// a restarted agent can say what was dropped; reconcile has nothing to undo.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/backend.h"
#include "agent/runtime/cgroup.h"
#include "ioerrno.h"

namespace nq::io {

// What the backend needs of the BPF object; IoErrnoProgram behind it in the
// agent (make_bpf_kernel), a recording double in unit tests.
class IoErrnoKernel {
 public:
  virtual ~IoErrnoKernel() = default;
  // Loads the object on first use, then attaches its programs (idempotent).
  virtual Status attach() = 0;
  // Detaches the programs; the object stays loaded for the next attach.
  virtual void detach() = 0;
  // Detaches and unloads.
  virtual void release() = 0;
  virtual Status put(uint64_t cgroup_id, const nq_io_config& config) = 0;
  virtual Status erase(uint64_t cgroup_id) = 0;
  virtual Result<std::optional<nq_io_config>> get(uint64_t cgroup_id) const = 0;
};

// The real one: IoErrnoProgram::load() on the first attach().
std::unique_ptr<IoErrnoKernel> make_bpf_kernel();

// The v2 cgroup id of a cgroup directory: kernfs exposes the cgroup's id as
// the directory's inode number on 64-bit kernels, which is what
// bpf_get_current_cgroup_id() returns.
Result<uint64_t> cgroup_id_of(const std::filesystem::path& dir);

// One container to fault: its cgroup v2 directory.
struct IoTarget {
  std::string container;
  std::filesystem::path cgroup_dir;
  bool operator==(const IoTarget&) const = default;
};

// Where the fault goes, checked against the node: every container needs a
// cgroup v2 group of its own (not the root, not the agent's own group
// `agent_v2_path`); FAILED_PRECONDITION naming "cgroup v2" otherwise.
Result<std::vector<IoTarget>> plan_targets(const runtime::PodInfo& pod,
                                           const std::vector<runtime::ContainerInfo>& containers,
                                           const runtime::CgroupFs& cgroups,
                                           const std::string& agent_v2_path);

struct IoErrnoOptions {
  // The node's cgroup hierarchies; nullopt when none could be discovered
  // (every apply is then refused, naming why).
  std::optional<runtime::CgroupFs> cgroups;
  std::string cgroups_problem;
  // The agent's own cgroup v2 path ("/..." as /proc/self/cgroup gives it),
  // never a target: faulting it would fault the agent.
  std::string agent_v2_path;

  // This node's view: CgroupFs::discover(host_root) and /proc/self/cgroup.
  static IoErrnoOptions discover(const std::filesystem::path& host_root = "/");
};

class IoErrnoFaults : public core::WorkloadBackend {
 public:
  IoErrnoFaults(core::RecordSink sink, IoErrnoOptions options,
                std::unique_ptr<IoErrnoKernel> kernel = make_bpf_kernel());
  ~IoErrnoFaults() override;

  std::vector<core::FaultKind> kinds() const override;
  Result<core::Details> apply(const std::string& id, const core::WorkloadFault& fault,
                              const runtime::PodInfo& pod,
                              const std::vector<runtime::ContainerInfo>& containers) override;
  Status revert(const std::string& id) override;
  // calls_matched / calls_failed / failed_percent, summed over containers.
  core::Details observe(const std::string& id) const override;
  // The links died with the earlier agent: nothing to undo, only logged.
  Status reconcile(const nodequake::v1::journal::ResourceOwned& resource) override;
  void release_all() override;

  // The journal key of one container's config.
  static std::string resource_key(const std::string& id, const std::string& container);

 private:
  struct Entry {
    std::string key;
    std::string container;
    uint64_t cgroup_id = 0;
  };
  Status undo_locked(const std::vector<Entry>& entries);

  core::RecordSink sink_;
  IoErrnoOptions options_;
  std::unique_ptr<IoErrnoKernel> kernel_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Entry>> active_;  // by injection id
  std::map<uint64_t, std::string> owner_;             // cgroup id -> injection id
  uint32_t next_generation_ = 1;
};

}  // namespace nq::io
