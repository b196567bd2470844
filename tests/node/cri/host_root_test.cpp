// CgroupFs::discover with a host root, on this machine's real cgroupfs: a
// child in a private mount namespace lays its mounts out like an agent in a
// DaemonSet -- its own /sys/fs/cgroup a container-style view that holds only
// one cgroup directory, and the host's cgroupfs bound at
// <tmp>/host/sys/fs/cgroup -- and resolves its own cgroup through the host root.
// The namespace dies with the child, so its mounts need no cleanup; the temp
// dir and the one cgroup directory are removed by RAII guards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "agent/runtime/cgroup.h"
#include "common/fd.h"
#include "common/file.h"

namespace nq::runtime {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct CgroupDir {
  fs::path path;
  ~CgroupDir() {
    if (!path.empty()) ::rmdir(path.c_str());
  }
};

// Runs `checks` in a forked child (namespace changes stay there) and returns
// what it reported: "" when every check held.
std::string in_child(const std::function<std::string()>& checks) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) return std::string("pipe2: ") + std::strerror(errno);
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);
  const pid_t child = ::fork();
  if (child < 0) return std::string("fork: ") + std::strerror(errno);
  if (child == 0) {
    const std::string msg = checks();
    (void)!::write(wr.get(), msg.data(), msg.size());
    ::_exit(msg.empty() ? 0 : 1);
  }
  wr.reset();
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(rd.get(), buf, sizeof(buf))) > 0;) msg.append(buf, size_t(n));
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return msg + "waitpid: " + std::strerror(errno);
  if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && msg.empty()))
    return msg + "child ended with status " + std::to_string(status);
  return msg;
}

// The child's checks; returns what went wrong ("" when all held).
std::string child_checks(const fs::path& host_root, const CgroupMount& mount,
                         const fs::path& narrow_dir) {
  const std::string hostcg = (host_root / "sys/fs/cgroup").string();
  if (::unshare(CLONE_NEWNS) < 0) return std::string("unshare: ") + std::strerror(errno);
  // Private first: without it the binds below would propagate to the
  // machine's mount namespace (/ is shared under systemd).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    return std::string("make-rprivate /: ") + std::strerror(errno);
  // The container's own view first, as runc makes it before the pod's
  // volumes: a tmpfs holding one directory of the hierarchy, built aside
  // and moved over /sys/fs/cgroup at the end. The mount table lists mounts
  // in the order they were made (a move keeps them in place), so the narrow
  // view comes before the host's whole hierarchy -- the order a "keep the
  // first" choice gets wrong.
  const fs::path view = host_root.parent_path() / "view";
  const fs::path own = view / mount.mount_point.filename();
  if (::mount("tmpfs", view.c_str(), "tmpfs", 0, "mode=755") < 0)
    return std::string("tmpfs view: ") + std::strerror(errno);
  std::error_code ec;
  fs::create_directories(own, ec);
  if (ec) return "mkdir " + own.string() + ": " + ec.message();
  if (::mount(narrow_dir.c_str(), own.c_str(), nullptr, MS_BIND, nullptr) < 0)
    return "bind " + narrow_dir.string() + ": " + std::strerror(errno);
  // Then the host's cgroupfs under the host root (the DaemonSet's volume).
  if (::mount("/sys/fs/cgroup", hostcg.c_str(), nullptr, MS_BIND | MS_REC, nullptr) < 0)
    return std::string("rbind cgroupfs: ") + std::strerror(errno);
  // The machine's own cgroup mounts leave this namespace; the view takes
  // their place.
  if (::umount2("/sys/fs/cgroup", MNT_DETACH) < 0)
    return std::string("detach /sys/fs/cgroup: ") + std::strerror(errno);
  if (::mount(view.c_str(), "/sys/fs/cgroup", nullptr, MS_MOVE, nullptr) < 0)
    return std::string("move the view to /sys/fs/cgroup: ") + std::strerror(errno);

  auto self = read_proc_cgroup(::getpid());
  if (!self.ok()) return self.error().message();
  const std::string controller = mount.v2 ? std::string() : std::string(*mount.controllers.begin());
  std::string out;
  for (const fs::path& root : {host_root, fs::path("/")}) {
    auto cgfs = CgroupFs::discover(root);
    if (!cgfs.ok()) return "discover(" + root.string() + "): " + cgfs.error().message();
    for (const CgroupMount& m : cgfs->mounts().mounts)
      if (m.root != "/" || !m.mount_point.string().starts_with(hostcg))
        out += "discover(" + root.string() + ") kept " + m.mount_point.string() + " (root " +
               m.root + "), not the host's whole hierarchy\n";
    auto dir = cgfs->dir_for(*self, controller);
    if (!dir.ok()) {
      out += "dir_for: " + dir.error().message() + "\n";
      continue;
    }
    // The directory must be our cgroup: cgroup.procs lists us.
    auto pids = read_cgroup_procs(*dir);
    if (!pids.ok() || std::find(pids->begin(), pids->end(), ::getpid()) == pids->end())
      out += dir->string() + "/cgroup.procs does not list pid " + std::to_string(::getpid()) + "\n";
  }
  return out;
}

TEST(CgroupHostRootNode, DiscoversTheHostsCgroupfsUnderAHostRoot) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root (mount namespace, bind mounts, mkdir in cgroupfs)";
  auto cgfs = CgroupFs::discover();
  ASSERT_TRUE(cgfs.ok()) << cgfs.error().message();
  // memory where v1 has it, else the unified tree; what matters is one
  // hierarchy we can make a directory in.
  const CgroupMount* mount = cgfs->mounts().v1("memory");
  if (mount == nullptr) mount = cgfs->mounts().unified();
  if (mount == nullptr) GTEST_SKIP() << "no memory (v1) or unified (v2) cgroup hierarchy mounted";
  if (mount->mount_point.parent_path() != "/sys/fs/cgroup" && !mount->v2)
    GTEST_SKIP() << "cgroupfs is not under /sys/fs/cgroup here (" << mount->mount_point << ")";
  if (mount->v2 && mount->mount_point != "/sys/fs/cgroup/unified")
    GTEST_SKIP() << "the view layout needs a v1/hybrid host (v2 at " << mount->mount_point << ")";

  const std::string tag = "nq-hostroot-" + std::to_string(::getpid());
  TempDir tmp{fs::temp_directory_path() / tag};
  const fs::path host_root = tmp.path / "host";
  fs::create_directories(host_root / "sys/fs/cgroup");
  fs::create_directories(tmp.path / "view");
  CgroupDir narrow{mount->mount_point / tag};
  ASSERT_EQ(::mkdir(narrow.path.c_str(), 0755), 0) << narrow.path << ": " << std::strerror(errno);

  EXPECT_EQ(in_child([&] { return child_checks(host_root, *mount, narrow.path); }), "");
  // Nothing of the child's mounts reached this namespace.
  auto after = read_mountinfo();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->v1("memory") ? after->v1("memory")->mount_point : fs::path(),
            cgfs->mounts().v1("memory") ? cgfs->mounts().v1("memory")->mount_point : fs::path());
  auto table = read_file("/proc/self/mountinfo");
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->find(tag), std::string::npos) << "a mount of the child's leaked";
}

// An agent in a private cgroup namespace (a container on cgroup v2) sees other
// processes' cgroups relative to its own ("/../.."); join_cgroup_namespace_of
// moves it into the host's. A child enters a cgroup of its own and unshares
// its cgroup namespace there, then joins ours back.
std::string cgroupns_child(const fs::path& dir, const std::string& controller) {
  if (Status st = write_knob(dir / "cgroup.procs", std::to_string(::getpid())); !st.ok())
    return st.error().message();
  if (::unshare(CLONE_NEWCGROUP) < 0) return std::string("unshare: ") + std::strerror(errno);
  auto path_of_parent = [&]() -> std::string {
    auto paths = read_proc_cgroup(::getppid());
    if (!paths.ok()) return "<" + paths.error().message() + ">";
    const std::string* p = find_cgroup_path(*paths, controller);
    return p ? *p : "<none>";
  };
  std::string out;
  if (!path_of_parent().starts_with("/.."))
    out += "in a private namespace the parent's path is " + path_of_parent() + "\n";
  auto joined = join_cgroup_namespace_of(::getppid());
  if (!joined.ok()) return out + joined.error().message();
  if (*joined != CgroupNamespace::kJoined) out += "first call did not join\n";
  if (path_of_parent().starts_with("/..")) out += "still relative: " + path_of_parent() + "\n";
  auto again = join_cgroup_namespace_of(::getppid());
  if (!again.ok() || *again != CgroupNamespace::kAlreadyShared) out += "second call joined again\n";
  return out;
}

TEST(CgroupNamespaceNode, JoinsTheCgroupNamespaceOfAnotherProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (mkdir in cgroupfs, setns)";
  auto cgfs = CgroupFs::discover();
  ASSERT_TRUE(cgfs.ok()) << cgfs.error().message();
  const CgroupMount* mount = cgfs->mounts().v1("memory");
  if (mount == nullptr) mount = cgfs->mounts().unified();
  if (mount == nullptr) GTEST_SKIP() << "no memory (v1) or unified (v2) cgroup hierarchy mounted";
  const std::string controller = mount->v2 ? std::string() : std::string("memory");
  // Ours, as seen from here: the child's answers are compared with it.
  auto ours = join_cgroup_namespace_of(::getpid());
  ASSERT_TRUE(ours.ok()) << ours.error().message();
  EXPECT_EQ(*ours, CgroupNamespace::kAlreadyShared);

  CgroupDir dir{mount->mount_point / ("nq-cgroupns-" + std::to_string(::getpid()))};
  ASSERT_EQ(::mkdir(dir.path.c_str(), 0755), 0) << dir.path << ": " << std::strerror(errno);
  EXPECT_EQ(in_child([&] { return cgroupns_child(dir.path, controller); }), "");
}

}  // namespace
}  // namespace nq::runtime
