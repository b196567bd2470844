#include "tests/node/disk/disk_helpers.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nq::disk::testing {

Result<LoopDevice> LoopDevice::create(uint64_t size) {
  LoopDevice d;
  d.size_ = size;
  d.backing_ = std::filesystem::temp_directory_path() /
               ("nq-loop-" + std::to_string(::getpid()) + "-" + std::to_string(::random()));
  UniqueFd file(::open(d.backing_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!file) return Error::from_errno(errno, "create " + d.backing_.string());
  if (::ftruncate(file.get(), static_cast<off_t>(size)) < 0)
    return Error::from_errno(errno, "ftruncate");
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl && errno == ENOENT) {
    // loop is a module on Debian's stock kernel (the vm tier) and devtmpfs has
    // no node before it is loaded: opening a misc node 10:237 of our own makes
    // the kernel request_module("char-major-10-237"), and devtmpfs then shows
    // /dev/loop-control and /dev/loopN.
    const std::string node = d.backing_.string() + ".ctl";
    if (::mknod(node.c_str(), S_IFCHR | 0600, ::makedev(10, 237)) < 0)
      return Error::from_errno(errno, "mknod " + node);
    ctl.reset(::open(node.c_str(), O_RDWR | O_CLOEXEC));
    const int err = errno;
    ::unlink(node.c_str());
    if (!ctl) return Error::from_errno(err, "open loop-control (char 10:237; no loop driver?)");
  }
  if (!ctl) return Error::from_errno(errno, "open /dev/loop-control");
  // Another process may take the free device between GET_FREE and
  // CONFIGURE (EBUSY): ask again.
  for (int attempt = 0; attempt < 10; ++attempt) {
    const int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return Error::from_errno(errno, "LOOP_CTL_GET_FREE");
    d.path_ = "/dev/loop" + std::to_string(n);
    d.dev_.reset(::open(d.path_.c_str(), O_RDWR | O_CLOEXEC));
    if (!d.dev_) return Error::from_errno(errno, "open " + d.path_);
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(file.get());
    cfg.block_size = 4096;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (::ioctl(d.dev_.get(), LOOP_CONFIGURE, &cfg) == 0) {
      d.minor_ = static_cast<uint32_t>(n);
      return d;
    }
    if (errno != EBUSY) return Error::from_errno(errno, "LOOP_CONFIGURE " + d.path_);
  }
  return Error::unavailable("no free loop device after 10 attempts");
}

LoopDevice::~LoopDevice() {
  if (dev_) ::ioctl(dev_.get(), LOOP_CLR_FD, 0);  // autoclear covers a failure here
  dev_.reset();
  if (!backing_.empty()) ::unlink(backing_.c_str());
}

Result<Tmpfs> Tmpfs::mount(uint64_t size) {
  std::string tmpl = (std::filesystem::temp_directory_path() /
                      ("nq-fill-" + std::to_string(::getpid()) + "-XXXXXX"))
                         .string();
  if (::mkdtemp(tmpl.data()) == nullptr) return Error::from_errno(errno, "mkdtemp");
  Tmpfs t;
  t.dir_ = tmpl;
  const std::string opts = "size=" + std::to_string(size) + ",mode=0755";
  if (::mount("tmpfs", tmpl.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) < 0) {
    const int err = errno;
    ::rmdir(tmpl.c_str());
    t.dir_.clear();
    return Error::from_errno(err, "mount tmpfs on " + tmpl);
  }
  return t;
}

Tmpfs::~Tmpfs() {
  if (dir_.empty()) return;
  ::umount2(dir_.c_str(), MNT_DETACH);
  ::rmdir(dir_.c_str());
}

Result<Rate> measure_direct_io(const std::filesystem::path& cgroup_dir, const std::string& device,
                               uint64_t size, std::chrono::milliseconds duration, bool read) {
  constexpr size_t kBlock = 64 << 10;
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, kBlock) != 0) return Error::internal("posix_memalign");
  std::memset(buf, 0x5a, kBlock);
  const std::string procs = (cgroup_dir / "cgroup.procs").string();
  UniqueFd procs_fd(::open(procs.c_str(), O_WRONLY | O_CLOEXEC));
  if (!procs_fd) {
    ::free(buf);
    return Error::from_errno(errno, "open " + procs);
  }
  int p[2];
  if (::pipe2(p, O_CLOEXEC) < 0) {
    ::free(buf);
    return Error::from_errno(errno, "pipe2");
  }
  UniqueFd rd(p[0]), wr(p[1]);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::free(buf);
    return Error::from_errno(errno, "fork");
  }
  if (pid == 0) {
    // Async-signal-safe calls only: the test process may have threads.
    Rate r;
    if (::write(procs_fd.get(), "0", 1) < 0) ::_exit(2);
    const int fd = ::open(device.c_str(), (read ? O_RDONLY : O_WRONLY) | O_DIRECT | O_CLOEXEC);
    if (fd < 0) ::_exit(3);
    timespec t0{}, t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t0);
    const double limit = std::chrono::duration<double>(duration).count();
    uint64_t off = 0;
    for (;;) {
      const ssize_t n = read ? ::pread(fd, buf, kBlock, static_cast<off_t>(off))
                             : ::pwrite(fd, buf, kBlock, static_cast<off_t>(off));
      if (n <= 0) ::_exit(4);
      r.bytes += static_cast<uint64_t>(n);
      off = (off + kBlock) % size;
      ::clock_gettime(CLOCK_MONOTONIC, &t);
      r.seconds = double(t.tv_sec - t0.tv_sec) + double(t.tv_nsec - t0.tv_nsec) / 1e9;
      if (r.seconds >= limit) break;
    }
    if (::write(wr.get(), &r, sizeof(r)) != sizeof(r)) ::_exit(5);
    ::_exit(0);
  }
  ::free(buf);
  wr.reset();
  pollfd pfd{rd.get(), POLLIN, 0};
  const int timeout_ms = static_cast<int>(duration.count()) + 20'000;
  Rate r;
  const int ready = ::poll(&pfd, 1, timeout_ms);
  const ssize_t got = ready > 0 ? ::read(rd.get(), &r, sizeof(r)) : -1;
  if (got != static_cast<ssize_t>(sizeof(r))) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof(r)))
    return Error::internal("I/O child failed (wait status " + std::to_string(status) + ")");
  return r;
}

Result<uint64_t> available_bytes(const std::filesystem::path& path) {
  struct statvfs v {};
  if (::statvfs(path.c_str(), &v) < 0) return Error::from_errno(errno, "statvfs " + path.string());
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

}  // namespace nq::disk::testing
