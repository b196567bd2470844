// The nq-stressor process as the agent owns it: started blocked inside the
// target container's cgroups, identified by pid + start time + boot id (what
// the journal records), released with one byte, killed and reaped through a
// pidfd. The lifeline (a socket whose other end only the agent holds) makes
// the stressor exit by itself when the agent dies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agent/stress/control.h"
#include "common/fd.h"
#include "common/result.h"

namespace nq::stress {

// The shared page (control.h), a memfd mapped in the agent.
class ControlPage {
 public:
  static Result<ControlPage> create();
  ControlPage(ControlPage&& other) noexcept;
  ControlPage& operator=(ControlPage&& other) noexcept;
  ControlPage(const ControlPage&) = delete;
  ControlPage& operator=(const ControlPage&) = delete;
  ~ControlPage();

  StressControl& get() const noexcept { return *page_; }
  int fd() const noexcept { return fd_.get(); }

 private:
  ControlPage(UniqueFd fd, StressControl* page) : fd_(std::move(fd)), page_(page) {}
  UniqueFd fd_;
  StressControl* page_ = nullptr;
};

struct SpawnRequest {
  std::filesystem::path binary;   // nq-stressor
  std::vector<std::string> args;  // after argv[0]: {"cpu", "2"}
  // Where the child is placed before it execs (so not one instruction of the
  // stressor runs, nor one page of it is charged, outside the container):
  // v1 (and the unified tree of a hybrid host): cgroup.procs files the child
  // writes itself into; pure v2: the cgroup directory for CLONE_INTO_CGROUP.
  std::vector<std::filesystem::path> join_procs;
  std::filesystem::path v2_dir;
};

class StressorProcess {
 public:
  // Starts the stressor; it waits for go() before doing any work.
  static Result<StressorProcess> spawn(const SpawnRequest& request, const ControlPage& control);
  StressorProcess(StressorProcess&&) noexcept = default;
  StressorProcess& operator=(StressorProcess&&) noexcept = default;
  // SIGKILLs and reaps a stressor still running.
  ~StressorProcess();

  pid_t pid() const noexcept { return pid_; }
  uint64_t start_time() const noexcept { return start_time_; }

  // /proc/PID/oom_score_adj, before go(): 1000 makes it the OOM killer's
  // first choice in its cgroup.
  Status set_oom_score_adj(int value) const;
  // Lets the stressor start its work.
  Status go() const;
  // nullopt while it runs; once it has exited (reaped here), how it ended
  // ("killed by signal 9 (Killed)", "exited with status 1").
  std::optional<std::string> poll_exit();
  // SIGKILL (if still running), then reap; ok when it was already gone.
  Status kill_and_reap(std::chrono::milliseconds timeout);
  // Resident anonymous memory (RssAnon): what a memory stressor holds. VmRSS
  // would add the pages of its binary and libraries (~2.5 MiB, shared and
  // file-backed), a 4 % error on a 64 MiB request. NotFound once it is gone.
  Result<uint64_t> anon_rss_bytes() const;

 private:
  StressorProcess() = default;
  UniqueFd pidfd_;
  UniqueFd lifeline_;
  pid_t pid_ = 0;
  uint64_t start_time_ = 0;
  std::optional<std::string> exit_;
};

// /proc/sys/kernel/random/boot_id, without the newline.
Result<std::string> read_boot_id();

// Start-up reconcile of a stressor an earlier incarnation journaled: SIGKILL
// it when pid, start time and boot id still name the same process, and wait
// until it is gone. A process that is gone (or a pid reused) is ok.
Status kill_recorded(pid_t pid, uint64_t start_time, const std::string& recorded_boot_id,
                     const std::string& current_boot_id, std::chrono::milliseconds timeout);

// "exited with status 1", "killed by signal 9 (Killed)" from waitid's siginfo.
std::string describe_exit(int code, int status);

}  // namespace nq::stress
