// Processes by pid, safely: a pid is only trusted together with its start
// time (/proc/PID/stat field 22), so a pid the kernel has reused for an
// unrelated process is never signalled.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "common/result.h"

namespace nq::sandbox {

struct ProcStat {
  char state = '?';         // R, S, D, Z, ...
  uint64_t start_time = 0;  // clock ticks after boot
};

// Parses /proc/PID/stat text. The command name (field 2) may contain spaces
// and parentheses, so the fields after it are counted from the last ')'.
Result<ProcStat> parse_proc_stat(std::string_view text);
// NotFound when the process does not exist.
Result<ProcStat> read_proc_stat(pid_t pid, const std::filesystem::path& proc_root = "/proc");

// True while `pid` runs (zombies count as gone) and, when `start_time` is not
// 0, is still the process that started then.
bool process_alive(pid_t pid, uint64_t start_time,
                   const std::filesystem::path& proc_root = "/proc");

// SIGTERM, then SIGKILL after `grace`, and waits until the process is gone.
// Ok when it is already gone or the pid now belongs to someone else.
Status stop_process(pid_t pid, uint64_t start_time, std::chrono::milliseconds grace);

}  // namespace nq::sandbox
