#include "common/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>

namespace nq {

Result<Netns> Netns::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open netns " + path);
  struct statfs fs {};
  if (::fstatfs(fd.get(), &fs) < 0) return Error::from_errno(errno, "statfs " + path);
  if (fs.f_type != NSFS_MAGIC)
    return Error::invalid_argument("netns", path + " is not a namespace file");
  struct stat st {};
  if (::fstat(fd.get(), &st) < 0) return Error::from_errno(errno, "stat " + path);
  return Netns(std::move(fd),
               NsId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)}, path);
}

Result<Netns> Netns::current() {
  return open("/proc/thread-self/ns/net");
}

Status enter_netns(int netns_fd) {
  if (::setns(netns_fd, CLONE_NEWNET) < 0) return Error::from_errno(errno, "setns(CLONE_NEWNET)");
  return ok();
}

}  // namespace nq

#include <sys/mount.h>

#include <filesystem>

namespace nq {
namespace {

// Like iproute2: the directory holding netns pins must be a shared mount so a
// pin made here shows up in mount namespaces that were cloned from ours.
Status make_pin_dir_shared(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error(ec, "mkdir " + dir.string());
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return ok();
  if (errno != EINVAL) return Error::from_errno(errno, "mount --make-rshared " + dir.string());
  // Not a mount point yet: bind it onto itself, then share it.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) < 0)
    return Error::from_errno(errno, "mount --bind " + dir.string());
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) < 0)
    return Error::from_errno(errno, "mount --make-rshared " + dir.string());
  return ok();
}

}  // namespace

Status create_named_netns(const std::string& path) {
  const std::filesystem::path pin(path);
  NQ_TRY(make_pin_dir_shared(pin.parent_path()));
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!file) return Error::from_errno(errno, "create " + path);
  file.reset();

  // unshare() moves only this new thread into the fresh namespace; the bind
  // mount of its /proc/thread-self/ns/net keeps the namespace alive after it exits.
  Status result;
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) < 0) {
      result = Error::from_errno(errno, "unshare(CLONE_NEWNET)");
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) < 0)
      result = Error::from_errno(errno, "bind-mount netns at " + path);
  });
  worker.join();
  if (!result.ok()) ::unlink(path.c_str());
  return result;
}

Status remove_named_netns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
    return Error::from_errno(errno, "umount " + path);
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return Error::from_errno(errno, "unlink " + path);
  return ok();
}

}  // namespace nq
