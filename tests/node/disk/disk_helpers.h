// What the disk node tests share: a loop device over a sparse file, a small
// tmpfs, and a writer process placed in a container's cgroup that measures
// its own O_DIRECT write rate. Each is RAII: gone when the test ends, failed
// or not.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace nq::disk::testing {

// /dev/loopN over a sparse file of `size` bytes (LOOP_CTL_GET_FREE +
// LOOP_CONFIGURE with autoclear); the destructor detaches it and removes the file.
class LoopDevice {
 public:
  static Result<LoopDevice> create(uint64_t size);
  LoopDevice(LoopDevice&&) noexcept = default;
  LoopDevice& operator=(LoopDevice&&) = delete;
  ~LoopDevice();
  const std::string& path() const { return path_; }
  uint32_t minor() const { return minor_; }
  uint64_t size() const { return size_; }

 private:
  LoopDevice() = default;
  std::string path_;
  std::filesystem::path backing_;
  uint32_t minor_ = 0;
  uint64_t size_ = 0;
  UniqueFd dev_;
};

// A tmpfs of `size` bytes mounted on a fresh directory; unmounted (lazily) and
// removed by the destructor.
class Tmpfs {
 public:
  static Result<Tmpfs> mount(uint64_t size);
  Tmpfs(Tmpfs&& o) noexcept : dir_(std::move(o.dir_)) { o.dir_.clear(); }
  Tmpfs& operator=(Tmpfs&&) = delete;
  ~Tmpfs();
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Tmpfs() = default;
  std::filesystem::path dir_;
};

struct Rate {
  uint64_t bytes = 0;
  double seconds = 0;
  double bytes_per_second() const { return seconds > 0 ? double(bytes) / seconds : 0; }
};

// Forks a child that joins `cgroup_dir` (its cgroup.procs), then writes 64 KiB
// blocks with O_DIRECT to `device` (wrapping at `size`) for `duration`, or
// reads them when `read` is set. The child is killed if it overruns.
Result<Rate> measure_direct_io(const std::filesystem::path& cgroup_dir, const std::string& device,
                               uint64_t size, std::chrono::milliseconds duration,
                               bool read = false);

// statvfs f_bavail * f_frsize.
Result<uint64_t> available_bytes(const std::filesystem::path& path);

}  // namespace nq::disk::testing
