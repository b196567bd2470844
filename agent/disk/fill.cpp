#include "agent/disk/fill.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <vector>

namespace nq::disk {

Result<uint64_t> fill_size(uint64_t bytes, double percent, const FsSpace& s) {
  if (bytes > 0) {
    if (bytes > s.free)
      return Error::invalid_argument("spec.disk_fill.bytes",
                                     std::to_string(bytes) + " bytes exceed the " +
                                         std::to_string(s.free) + " bytes free on the filesystem");
    return bytes;
  }
  if (!(percent > 0 && percent <= 100))
    return Error::invalid_argument("spec.disk_fill.percent", "must be in (0, 100]");
  uint64_t n = static_cast<uint64_t>(std::floor(static_cast<double>(s.available) * percent / 100));
  if (s.block_size > 0) n -= n % s.block_size;
  if (n == 0)
    return Error::invalid_argument("spec.disk_fill.percent",
                                   "the filesystem has no space available to fill (" +
                                       std::to_string(s.available) + " bytes)");
  return n;
}

Result<FsSpace> fs_space(int fd) {
  struct statvfs v {};
  if (::fstatvfs(fd, &v) < 0) return Error::from_errno(errno, "fstatvfs");
  FsSpace s;
  s.block_size = v.f_frsize ? v.f_frsize : v.f_bsize;
  s.free = static_cast<uint64_t>(v.f_bfree) * s.block_size;
  s.available = static_cast<uint64_t>(v.f_bavail) * s.block_size;
  return s;
}

Result<std::string> allocate(int fd, uint64_t size) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return std::string("fallocate");
  const int err = errno;
  if (err != EOPNOTSUPP) return Error::from_errno(err, "fallocate " + std::to_string(size));
  // Real blocks, not a sparse file: zeros written in 1 MiB chunks.
  std::vector<char> zeros(1 << 20, 0);
  uint64_t left = size;
  while (left > 0) {
    const size_t n = left < zeros.size() ? static_cast<size_t>(left) : zeros.size();
    const ssize_t w = ::write(fd, zeros.data(), n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write fill file");
    }
    left -= static_cast<uint64_t>(w);
  }
  if (::fsync(fd) < 0) return Error::from_errno(errno, "fsync fill file");
  return std::string("write");
}

}  // namespace nq::disk
