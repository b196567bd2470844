// ContainerdEnv's teardown: everything a run of containerd may leave on the
// host, removed in an order that works also when a test failed half way or
// containerd died: pods through CRI first (containerd undoes its own work
// best), then by hand whatever is left.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "agent/runtime/cgroup.h"
#include "common/file.h"
#include "common/netns.h"
#include "tests/support/containerd/containerd_env.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;

void warn(const std::string& what) {
  std::cerr << "[containerd-env teardown] " << what << "\n";
}

// Processes whose command line mentions `needle`: the shims containerd
// started for this run carry its socket path (-address ...).
std::vector<pid_t> processes_mentioning(const std::string& needle) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(needle) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

// The directories of our cgroup parent in every mounted hierarchy.
std::vector<fs::path> cgroup_dirs(const std::string& parent) {
  std::vector<fs::path> out;
  auto mounts = runtime::read_mountinfo();
  if (!mounts.ok()) {
    warn("mountinfo: " + mounts.error().message());
    return out;
  }
  for (const auto& m : mounts->mounts) {
    fs::path dir = m.mount_point / fs::path(parent).relative_path();
    std::error_code ec;
    if (fs::is_directory(dir, ec)) out.push_back(dir);
  }
  return out;
}

// Every directory under (and including) `root`, deepest first.
std::vector<fs::path> subtree_deepest_first(const fs::path& root) {
  std::vector<fs::path> dirs = {root};
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code e2;
    if (it->is_directory(e2) && !it->is_symlink(e2)) dirs.push_back(it->path());
  }
  std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
    return a.string().size() > b.string().size();
  });
  return dirs;
}

// Mount points at or under `dir` in our mount namespace, deepest first.
std::vector<std::string> mounts_under(const fs::path& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  const std::string prefix = dir.string();
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string id, parent, devno, root, mount_point;
    ss >> id >> parent >> devno >> root >> mount_point;
    if (mount_point == prefix || mount_point.starts_with(prefix + "/")) out.push_back(mount_point);
  }
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace

Status ContainerdEnv::prioritize_cpu() {
  NQ_ASSIGN_OR_RETURN(auto mounts, runtime::read_mountinfo());
  const fs::path rel = fs::path(cgroup_parent_).relative_path();
  if (const auto* cpu = mounts.v1("cpu"))
    return write_knob(cpu->mount_point / rel / "cpu.shares", "10240");
  if (const auto* v2 = mounts.unified())
    return write_knob(v2->mount_point / rel / "cpu.weight", "1000");
  return Error::not_found("no cpu controller mounted");
}

void ContainerdEnv::teardown() noexcept {
  try {
    // 1. Pods, through containerd while it runs: it stops the containers,
    //    tears down the CNI network and removes netns, cgroups and mounts.
    if (pid_ > 0 && stub_) {
      if (auto list = list_sandboxes(); list.ok()) {
        for (const auto& s : *list)
          if (Status st = remove_pod(s.id()); !st.ok()) warn(st.error().message());
      } else {
        warn(list.error().message());
      }
    }
    if (Status st = stop_daemon(); !st.ok()) warn(st.error().message());

    // 2. Processes left behind: shims of this run, then whatever still runs
    //    in our cgroups (containers whose shim died with a crashed daemon).
    for (pid_t pid : processes_mentioning(socket_.string())) {
      warn("killing leftover shim " + std::to_string(pid));
      ::kill(pid, SIGKILL);
    }
    const auto cg_dirs = cgroup_dirs(cgroup_parent_);
    for (int round = 0; round < 50; ++round) {
      bool any = false;
      for (const auto& top : cg_dirs) {
        for (const auto& d : subtree_deepest_first(top)) {
          auto pids = runtime::read_cgroup_procs(d);
          if (!pids.ok()) continue;
          for (pid_t pid : *pids) {
            any = true;
            ::kill(pid, SIGKILL);
          }
        }
      }
      if (!any) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }

    // 3. Mounts under our directory (rootfs overlays, shm), netns bind
    //    mounts of our pods.
    for (const auto& m : mounts_under(dir_)) {
      if (::umount2(m.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        warn("umount " + m + ": " + std::strerror(errno));
    }
    for (const auto& ns : netns_paths_) {
      std::error_code ec;
      if (!fs::exists(ns, ec)) continue;
      if (Status st = remove_named_netns(ns); !st.ok()) warn(st.error().message());
    }

    // 4. The bridge (the CNI plugin creates it and never deletes it).
    if (auto sock = net::NlSocket::open_route(); sock.ok()) {
      if (Status st = net::delete_link(*sock, bridge_);
          !st.ok() && st.error().status_code() != Code::kNotFound)
        warn("delete bridge " + bridge_ + ": " + st.error().message());
    }

    // 5. The cgroup parent, in every hierarchy, deepest first; rmdir fails
    //    with EBUSY while a killed task is still exiting.
    for (const auto& top : cg_dirs) {
      for (const auto& d : subtree_deepest_first(top)) {
        for (int i = 0; i < 100; ++i) {
          if (::rmdir(d.c_str()) == 0 || errno == ENOENT) break;
          if (errno != EBUSY) {
            warn("rmdir " + d.string() + ": " + std::strerror(errno));
            break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    }

    // 6. CNI result caches of our network, then our directory.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/var/lib/cni/results", ec)) {
      if (e.path().filename().string().starts_with(network_ + "-")) fs::remove(e.path(), ec);
    }
    fs::remove_all(dir_, ec);
    if (ec) warn("remove " + dir_.string() + ": " + ec.message());
  } catch (const std::exception& e) {
    // A destructor must not throw; what is left is reported.
    warn(std::string("teardown: ") + e.what());
  }
}

}  // namespace nq::testing
