// The disk faults: io_throttle (io.max / blkio.throttle.* on the block device
// behind a path in the container, the previous limits journaled and restored)
// and disk_fill (a file allocated under a directory in the container, deleted
// on revert, found again after a crash by its inode).
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/core/backend.h"
#include "agent/disk/throttle.h"
#include "agent/runtime/cgroup.h"
#include "common/fd.h"

namespace nq::disk {

class DiskFaults final : public core::WorkloadBackend {
 public:
  // `runtime` (may be null) lets reconcile reach a fill file through the
  // pod's current processes when the recorded one is gone.
  DiskFaults(core::RecordSink sink, runtime::CgroupFs cgroups, runtime::Runtime* runtime = nullptr);

  std::vector<core::FaultKind> kinds() const override;
  Result<core::Details> apply(const std::string& id, const core::WorkloadFault& fault,
                              const runtime::PodInfo& pod,
                              const std::vector<runtime::ContainerInfo>& containers) override;
  Status revert(const std::string& id) override;
  core::Details observe(const std::string& id) const override;
  Status reconcile(const nodequake::v1::journal::ResourceOwned& resource) override;
  void release_all() override;

 private:
  struct Throttle {
    std::string key;
    std::filesystem::path cgroup_dir;
    CgroupVersion version = CgroupVersion::kV1;
    DevNum dev;
    std::map<std::string, std::string> previous;
  };
  struct Fill {
    std::string key;
    std::shared_ptr<UniqueFd> dir;  // O_PATH fd of the directory holding the file
    std::string name;
    std::string container_path;
    dev_t dev = 0;
    ino_t ino = 0;
    uint64_t bytes = 0;
  };
  struct Injection {
    std::vector<Throttle> throttles;
    std::vector<Fill> fills;
  };

  Result<core::Details> throttle(const std::string& id, const core::IoThrottle& spec,
                                 const runtime::PodInfo& pod,
                                 const std::vector<runtime::ContainerInfo>& containers);
  Result<core::Details> fill(const std::string& id, const core::DiskFill& spec,
                             const runtime::PodInfo& pod,
                             const std::vector<runtime::ContainerInfo>& containers);
  Status undo_throttle(const Throttle& t);
  Status undo_fill(const Fill& f);
  Status undo(const Injection& inj);
  Status reconcile_fill(const nodequake::v1::journal::ResourceOwned& resource);
  // Which cgroup directory and version a container's throttle goes in.
  Result<std::pair<std::filesystem::path, CgroupVersion>> io_cgroup(
      const runtime::ContainerInfo& c) const;
  Status released(const std::string& key);

  core::RecordSink sink_;
  runtime::CgroupFs cgroups_;
  runtime::Runtime* runtime_;
  mutable std::mutex mu_;
  std::map<std::string, Injection> active_;
};

// "disk_fill/<ns>/<pod>/<container>/<id>": the journal key names the pod, so a
// restarted agent can find the container again when the recorded process is gone.
std::string resource_key(std::string_view kind, const runtime::PodInfo& pod,
                         std::string_view container, std::string_view id);
struct KeyParts {
  std::string kind, namespace_name, pod, container, id;
};
Result<KeyParts> parse_resource_key(std::string_view key);

}  // namespace nq::disk
