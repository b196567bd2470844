#include "agent/stress/container_watch.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "agent/runtime/cgroup.h"

namespace nq::stress {

Result<ContainerWatch> ContainerWatch::open(const runtime::ContainerInfo& c,
                                            const std::filesystem::path& proc_root) {
  if (c.pid <= 0) return Error::failed_precondition("container " + c.name + " is not running");
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0)));
  if (!fd) {
    const int err = errno;
    if (err == ESRCH)
      return Error::failed_precondition("container " + c.name + " is no longer running (pid " +
                                        std::to_string(c.pid) + " exited)");
    return Error::from_errno(err, "pidfd_open " + std::to_string(c.pid));
  }
  // Read after the pidfd exists: if the pid was reused in between, the
  // cgroups differ now; if it was not, the pidfd pins the process we checked.
  auto now = runtime::read_proc_cgroup(c.pid, proc_root);
  if (!now.ok() || *now != c.cgroups)
    return Error::failed_precondition("container " + c.name +
                                      " restarted while it was resolved (pid " +
                                      std::to_string(c.pid) + " is no longer in its cgroups)");
  return ContainerWatch(std::move(fd), c.pid);
}

bool ContainerWatch::exited() const {
  pollfd p{pidfd_.get(), POLLIN, 0};
  // A pidfd polls readable once the process has exited (zombie or reaped).
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

}  // namespace nq::stress
