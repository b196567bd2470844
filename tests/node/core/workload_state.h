// What the workload faults change outside the network namespace, as text the
// crash test compares with its baseline: per cgroup directory of a sandbox
// pod (the pod's and its containers', in every hierarchy) the freezer state,
// the block I/O throttles and the stressor processes in it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace nq::testing {

// One line per fact, sorted: "<dir>/freezer.state: THAWED",
// "<dir>/io.max: ", "<dir>: 0 nq-stressor processes", ...
Result<std::vector<std::string>> capture_cgroup_state(
    const std::vector<std::string>& pod_cgroup_dirs);

// Names in `dir` that start with ".nodequake-fill-".
std::vector<std::string> fill_files(const std::filesystem::path& dir);

}  // namespace nq::testing
