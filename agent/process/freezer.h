// Freezing a cgroup, on either cgroup version, and killing everything in it
// without a fork slipping through. Parsers take strings; the executors are thin
// cgroupfs reads and writes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "common/result.h"

namespace nq::process {

enum class CgroupVersion { kV1, kV2 };

// "v1" / "v2", as FrozenCgroup.version journals it.
std::string_view version_name(CgroupVersion v);
Result<CgroupVersion> parse_version(std::string_view name);

// One cgroup a fault acts on: the freezer hierarchy's directory on v1, the
// unified tree's on v2.
struct FreezerCgroup {
  std::filesystem::path dir;
  CgroupVersion version = CgroupVersion::kV1;
};

// The container's freezer cgroup: the unified directory on a pure v2 host (or
// when the v1 freezer is not mounted but v2 is), else the v1 freezer
// hierarchy's. NotFound naming the container when it has neither.
Result<FreezerCgroup> freezer_cgroup(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c);

// v1 freezer.state reads THAWED, FREEZING or FROZEN. `text` may end in "\n".
enum class FreezerState { kThawed, kFreezing, kFrozen };
Result<FreezerState> parse_freezer_state(std::string_view text);
// v2 cgroup.events: "populated 1\nfrozen 0\n" -> the "frozen" value.
Result<bool> parse_events_frozen(std::string_view text);

// Whether the cgroup is frozen right now (v1: FROZEN, FREEZING counts as not).
Result<bool> is_frozen(const FreezerCgroup& cg);
// Freezes and waits until the kernel reports every task frozen (v1 stays in
// FREEZING while a task sits in an uninterruptible sleep, so it re-writes
// FROZEN until `timeout`, then DeadlineExceeded naming the directory; the
// cgroup is left FREEZING for the caller to thaw).
Status freeze(const FreezerCgroup& cg, std::chrono::milliseconds timeout);
// Thaws; a vanished cgroup (ENOENT) counts as thawed.
Status thaw(const FreezerCgroup& cg);

// SIGKILLs every process in the cgroup: v2 writes cgroup.kill (which also
// reaches processes forked meanwhile); v1 has no such knob, so the caller
// freezes first and the pids read from cgroup.procs cannot fork while they
// are signalled. Returns the pids that got the signal.
Result<std::vector<pid_t>> kill_all(const FreezerCgroup& cg);

// Waits until none of `pids` is listed in the cgroup any more (an exiting task
// leaves cgroup.procs before it becomes a zombie), or DeadlineExceeded.
Status wait_gone(const FreezerCgroup& cg, const std::vector<pid_t>& pids,
                 std::chrono::milliseconds timeout);

}  // namespace nq::process
