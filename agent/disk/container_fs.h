// Files inside a container, reached from the agent through /proc/PID/root of
// one of its processes. Paths are resolved with openat2(RESOLVE_IN_ROOT) on
// that root, so a symlink in the container ("/data -> /") can never lead out
// of the container's root into the host's files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/fd.h"
#include "common/result.h"

namespace nq::disk {

// "/proc/12/root" + "/data/x" -> "/proc/12/root/data/x" (the container path
// must be absolute; only for messages and the journal, never opened as is).
std::string join_under_root(std::string_view root, std::string_view container_path);
// "/data/x/" -> {"/data/x", ""}, "/data/f" -> {"/data", "f"}, "/f" -> {"/", "f"}.
std::pair<std::string, std::string> split_parent(std::string_view container_path);
// An injection id as a file name: '/' (allowed in ids) becomes '_'.
std::string fill_file_name(std::string_view injection_id);

// The root of `pid`'s mount namespace view, as an O_PATH directory fd.
// NotFound when the process is gone.
Result<UniqueFd> open_root(pid_t pid, const std::string& proc = "/proc");
// openat2(root_fd, path, flags | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS).
// `field` names the spec field in the error ("spec.disk_fill.path").
Result<UniqueFd> open_in_root(int root_fd, std::string_view container_path, int flags,
                              std::string_view field);

// /proc/sys/kernel/random/boot_id.
Result<std::string> read_boot_id();

}  // namespace nq::disk
