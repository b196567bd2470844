// Whether the container a stressor was placed in still runs. A container
// restarted by the kubelet is a new container (new id, new cgroup) in the
// same pod; the old one's cgroup keeps only our stressor, burning CPU that
// nobody is measured against and keeping the runtime from removing the
// directory. The watch is a pidfd on the container's main process -- the
// process whose exit is the container's end for every runtime -- so the
// backend notices on its next tick, without asking the runtime.
#pragma once

#include <sys/types.h>

#include <filesystem>

#include "agent/runtime/runtime.h"
#include "common/fd.h"
#include "common/result.h"

namespace nq::stress {

class ContainerWatch {
 public:
  // A pidfd on `container.pid`, checked to still be the process the runtime
  // reported: its /proc/PID/cgroup must equal container.cgroups (a pid reused
  // since the pod was resolved is refused). FailedPrecondition when the
  // container is not running (any more).
  static Result<ContainerWatch> open(const runtime::ContainerInfo& container,
                                     const std::filesystem::path& proc_root = "/proc");

  pid_t pid() const noexcept { return pid_; }
  // True once the process has exited (its pidfd is readable).
  bool exited() const;

 private:
  ContainerWatch(UniqueFd pidfd, pid_t pid) : pidfd_(std::move(pidfd)), pid_(pid) {}
  UniqueFd pidfd_;
  pid_t pid_ = 0;
};

}  // namespace nq::stress
