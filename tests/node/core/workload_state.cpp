#include "tests/node/core/workload_state.h"

#include <unistd.h>

#include <algorithm>

#include "agent/runtime/cgroup.h"
#include "common/file.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;

// The knobs a workload fault writes and must restore: the freezer (v1
// freezer.state, v2 cgroup.freeze) and the throttles (v1 blkio.throttle.*,
// v2 io.max). Memory and CPU faults write no knob; their trace would be a
// stressor process, counted separately.
constexpr const char* kKnobs[] = {
    "freezer.state",
    "cgroup.freeze",
    "io.max",
    "blkio.throttle.read_bps_device",
    "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device",
    "blkio.throttle.write_iops_device",
};

bool is_stressor(pid_t pid) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return !ec && exe.filename() == "nq-stressor";
}

Status capture_dir(const fs::path& dir, std::vector<std::string>& out) {
  for (const char* knob : kKnobs) {
    const fs::path file = dir / knob;
    if (!fs::exists(file)) continue;
    NQ_ASSIGN_OR_RETURN(std::string text, read_file(file));
    out.push_back(file.string() + ": " + text);
  }
  NQ_ASSIGN_OR_RETURN(auto pids, runtime::read_cgroup_procs(dir));
  const auto stressors = std::count_if(pids.begin(), pids.end(), is_stressor);
  out.push_back(dir.string() + ": " + std::to_string(stressors) + " nq-stressor processes");
  return ok();
}

}  // namespace

Result<std::vector<std::string>> capture_cgroup_state(
    const std::vector<std::string>& pod_cgroup_dirs) {
  std::vector<std::string> out;
  for (const std::string& pod_dir : pod_cgroup_dirs) {
    NQ_TRY(capture_dir(pod_dir, out));
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(pod_dir, ec)) {
      if (entry.is_directory()) NQ_TRY(capture_dir(entry.path(), out));
    }
    if (ec) return Error::from_errno(ec.value(), "list " + pod_dir);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> fill_files(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".nodequake-fill-", 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace nq::testing
