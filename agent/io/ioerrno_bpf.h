// The ioerrno BPF object (ebpf/ioerrno.bpf.c): loading it, attaching its
// three LSM programs as BPF links, and its per-cgroup configs.
//
// Links are held by this process only (nothing is pinned): when the agent
// dies, the kernel detaches the programs and the faults stop. That is the
// crash-safety of io_errno; the journal only records what was there.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "common/result.h"
#include "ioerrno.h"

namespace nq::io {

class IoErrnoProgram {
 public:
  // Opens and loads the object; nothing is attached, the maps are empty. On
  // a verifier rejection the error carries the tail of the verifier log.
  // Where the kernel refuses LSM programs (no BPF LSM), loading fails with
  // the kernel's errno (EPERM/EINVAL) and says so.
  static Result<IoErrnoProgram> load();

  IoErrnoProgram(IoErrnoProgram&&) noexcept;
  IoErrnoProgram& operator=(IoErrnoProgram&&) noexcept;
  IoErrnoProgram(const IoErrnoProgram&) = delete;
  IoErrnoProgram& operator=(const IoErrnoProgram&) = delete;
  // Closes the links (detaching the programs) and the object.
  ~IoErrnoProgram();

  // Attaches the three programs (lsm/file_open, lsm/file_permission,
  // lsm/file_free_security). Idempotent; all or nothing.
  Status attach();
  // Closes the links and forgets every file mark (marks of files freed
  // while detached would otherwise stay in the map). Idempotent.
  void detach();
  bool attached() const noexcept;

  // The config of one cgroup (v2 cgroup id), replacing any earlier one.
  Status put(uint64_t cgroup_id, const nq_io_config& config);
  // Removes a cgroup's config; an absent one counts as removed.
  Status erase(uint64_t cgroup_id);
  // A cgroup's config with the program's counters; nullopt when absent.
  Result<std::optional<nq_io_config>> get(uint64_t cgroup_id) const;
  // Files currently marked for read/write faults (for tests and metrics).
  Result<size_t> marked_files() const;

  // The names the programs carry in the kernel (bpf_prog_info.name), for
  // finding them from outside: "nq_io_open", "nq_io_perm", "nq_io_free".
  static constexpr const char* kProgramNames[] = {"nq_io_open", "nq_io_perm", "nq_io_free"};

 private:
  struct Impl;
  explicit IoErrnoProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nq::io
