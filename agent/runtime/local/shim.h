// The per-pod supervisor (like containerd-shim plus the kubelet's restart
// loop): a detached process outside the pod's cgroups that starts each
// container process in the pod's cgroups and netns, restarts it when it exits
// (restartPolicy: Always, with backoff) and stops them all on SIGTERM. It keeps
// the pod's registry record current (pids, restart counts), so the agent always
// resolves the running process.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace nq::sandbox {

// Delay before restarting a container that has failed `failures` times in a
// row: 250ms doubling to 10s (the kubelet uses 10s to 5min; a demo wants
// to see a killed pod come back within seconds).
std::chrono::milliseconds restart_backoff(int failures);
// A container that ran this long before exiting starts its backoff afresh.
inline constexpr std::chrono::seconds kBackoffReset{10};
// Time the containers get between SIGTERM and SIGKILL when the shim stops.
inline constexpr std::chrono::seconds kStopGrace{5};

struct ShimArgs {
  std::filesystem::path state_dir;
  std::string namespace_name;
  std::string name;
  // Inherited pipe: the shim writes "ok\n" once every container has started,
  // or "error: ...\n", then closes it. -1: none.
  int ready_fd = -1;
};

// Runs the shim until SIGTERM/SIGINT; returns once its containers are stopped.
// The process must be single-threaded (it forks the containers).
Status run_shim(const ShimArgs& args);

struct ShimLaunch {
  // argv prefix of the shim ("/path/nqctl", "sandbox", "shim"); the launcher
  // appends "--state-dir DIR --ready-fd 3 NAMESPACE/NAME".
  std::vector<std::string> command;
  std::filesystem::path state_dir;
  std::string namespace_name;
  std::string name;
  std::filesystem::path log_path;  // the shim's stdout/stderr (and its containers')
  std::chrono::milliseconds ready_timeout{10'000};
};

// Starts the shim as a daemon (double fork + setsid, so it is reparented away
// from the caller and outlives it) and waits until it reports ready. Returns
// its pid. On failure the shim is stopped and the error carries its message.
Result<pid_t> launch_shim(const ShimLaunch& launch);

}  // namespace nq::sandbox
