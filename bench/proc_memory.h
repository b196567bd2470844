// A process's memory as the kernel accounts it (/proc/PID/status), for the
// agent's RSS figures: the total the goal is about, and the split that says
// where it goes (anonymous heap/stacks vs file-backed pages of the binary and
// its libraries).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "common/result.h"

namespace nq::bench {

struct ProcMemory {
  uint64_t rss_kib = 0;    // VmRSS = RssAnon + RssFile + RssShmem
  uint64_t anon_kib = 0;   // RssAnon: heap, thread stacks, anonymous mappings
  uint64_t file_kib = 0;   // RssFile: resident pages of the binary and its libraries
  uint64_t shmem_kib = 0;  // RssShmem
  uint64_t hwm_kib = 0;    // VmHWM: peak RSS
  int threads = 0;
  double rss_mib() const { return static_cast<double>(rss_kib) / 1024.0; }
};

// Parses the text of /proc/PID/status; InvalidArgument naming the field when
// VmRSS or Threads is missing (a kernel thread or a zombie has no VmRSS).
Result<ProcMemory> parse_proc_status(std::string_view text);
Result<ProcMemory> read_proc_memory(pid_t pid);

}  // namespace nq::bench
