// Disk fill sizing and the fill file itself. The size is decided from the
// filesystem's statvfs figures as the container sees them (pure), then the
// file is allocated with fallocate, or written when the filesystem has no
// fallocate (EOPNOTSUPP: e.g. some FUSE and network filesystems).
#pragma once

#include <cstdint>
#include <string>

#include "common/fd.h"
#include "common/result.h"

namespace nq::disk {

struct FsSpace {
  uint64_t block_size = 0;  // f_frsize
  uint64_t free = 0;        // bytes free for root (f_bfree * f_frsize)
  uint64_t available = 0;   // bytes free for unprivileged users (f_bavail * f_frsize)
};

// The bytes to allocate: `bytes` as given (at most what is free), or `percent`
// of the space available to the container's (unprivileged) processes, rounded
// down to whole blocks. INVALID_ARGUMENT naming spec.disk_fill.bytes/percent.
Result<uint64_t> fill_size(uint64_t bytes, double percent, const FsSpace& space);

Result<FsSpace> fs_space(int fd);

// Allocates `size` bytes in `fd` (fallocate, else zero-filled writes). Returns
// "fallocate" or "write".
Result<std::string> allocate(int fd, uint64_t size);

}  // namespace nq::disk
