// Loading a missing qdisc's module from the host's module tree: a node whose
// kernel has sch_netem as a module on disk, not yet loaded, gets netem
// instead of the delay line.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace nq {

struct ModuleLoad {
  bool loaded = false;  // loaded now, or it was already
  std::string detail;   // what was done, or why not
};

// Loads `name` (e.g. "sch_netem") from <modules_dir>/<running release>/
// <subdir>/<name>.ko[.xz|.zst|.gz] with finit_module(2). Cheap: a few stats
// and one syscall, no dependency resolution (sch_netem has none). Nothing is
// tried when the kernel has no module support (no /proc/modules) or the tree
// is not mounted; `detail` says which.
ModuleLoad load_kernel_module(std::string_view name, std::string_view subdir = "kernel/net/sched",
                              const std::filesystem::path& modules_dir = "/lib/modules");

}  // namespace nq
