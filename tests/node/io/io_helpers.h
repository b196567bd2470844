// What the io_errno node tests share: a worker process placed in a pod's
// cgroup that performs file syscalls on request and reports their errno,
// the BPF LSM availability of this kernel, and the kernel's BPF links.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/result.h"

namespace nq::io::testing {

// "" when BPF LSM programs can be loaded and "bpf" is an active LSM, else why
// not (the capability probe's detail).
std::string bpf_lsm_unavailable_reason();

// A forked child moved into a cgroup (its cgroup.procs) before it does
// anything, so each syscall it makes is the cgroup's. The destructor ends
// and reaps it (it also dies with the test through PR_SET_PDEATHSIG).
class CgroupWorker {
 public:
  enum class Op : int { kOpen = 1, kRead = 2, kWrite = 3 };
  struct Outcome {
    int calls = 0;
    int failures = 0;
    int last_errno = 0;        // errno of the last failed call (0: none failed)
    bool open_failed = false;  // kRead/kWrite: the one open() before the calls failed
  };

  static Result<CgroupWorker> start(const std::filesystem::path& cgroup_dir);
  CgroupWorker(CgroupWorker&&) noexcept;
  CgroupWorker& operator=(CgroupWorker&&) = delete;
  ~CgroupWorker();

  // kOpen: `count` open()+close() of `path`. kRead/kWrite: one open() of
  // `path` (after the request arrives), then `count` pread()/pwrite() of
  // one byte at offset 0.
  Result<Outcome> run(Op op, const std::string& path, int count);
  pid_t pid() const { return pid_; }

 private:
  CgroupWorker(pid_t pid, UniqueFd to, UniqueFd from)
      : pid_(pid), to_(std::move(to)), from_(std::move(from)) {}
  pid_t pid_ = -1;
  UniqueFd to_, from_;
};

// Names (bpf_prog_info.name) of the programs of every BPF link in the kernel.
Result<std::vector<std::string>> linked_program_names();
// How many links run one of the ioerrno programs ("nq_io_*").
Result<int> ioerrno_links();

}  // namespace nq::io::testing
