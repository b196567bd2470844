#include "agent/runtime/local/pod_cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "common/fd.h"
#include "common/file.h"

namespace nq::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

std::string join_path(std::string_view root, std::string_view rel) {
  std::string out(root);
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out + "/" + std::string(rel);
}

bool has(const Hierarchy& h, std::string_view controller) {
  return h.controllers.count(std::string(controller)) > 0;
}

// Where a controller's knobs live: its v1 hierarchy, else v2 when the unified root offers it.
const Hierarchy* owner(const std::vector<Hierarchy>& hs, std::string_view controller) {
  for (const Hierarchy& h : hs)
    if (!h.v2 && has(h, controller)) return &h;
  for (const Hierarchy& h : hs)
    if (h.v2 && has(h, controller)) return &h;
  return nullptr;
}

void add_limits(std::vector<CgroupWrite>& w, const std::vector<Hierarchy>& hs,
                const std::filesystem::path& rel, const Limits& limits) {
  if (limits.cpu_millis) {
    const int64_t quota = *limits.cpu_millis * kCfsPeriodUs / 1000;
    if (const Hierarchy* h = owner(hs, "cpu")) {
      const std::filesystem::path d = h->dir / rel;
      if (h->v2) {
        w.push_back({d / "cpu.max", std::to_string(quota) + " " + std::to_string(kCfsPeriodUs)});
      } else {
        w.push_back({d / "cpu.cfs_period_us", std::to_string(kCfsPeriodUs)});
        w.push_back({d / "cpu.cfs_quota_us", std::to_string(quota)});
      }
    }
  }
  if (limits.memory_bytes) {
    if (const Hierarchy* h = owner(hs, "memory")) {
      const std::filesystem::path d = h->dir / rel;
      w.push_back({d / (h->v2 ? "memory.max" : "memory.limit_in_bytes"),
                   std::to_string(*limits.memory_bytes)});
    }
  }
}

}  // namespace

Result<std::vector<Hierarchy>> select_hierarchies(const runtime::CgroupFs& fs,
                                                  const std::set<std::string>& v2_controllers) {
  std::vector<Hierarchy> out;
  for (const runtime::CgroupMount& m : fs.mounts().mounts) {
    bool wanted = m.v2;
    for (std::string_view c : kV1Controllers)
      wanted = wanted || m.controllers.count(std::string(c));
    if (!wanted) continue;
    Hierarchy h;
    h.key = m.key;
    h.v2 = m.v2;
    h.root = m.root;
    h.controllers = m.v2 ? v2_controllers : m.controllers;
    NQ_ASSIGN_OR_RETURN(h.dir, fs.dir(m, m.root));
    out.push_back(std::move(h));
  }
  if (out.empty()) return Error::failed_precondition("no cgroup hierarchy is mounted");
  return out;
}

Result<std::vector<Hierarchy>> discover_hierarchies(const runtime::CgroupFs& fs) {
  std::set<std::string> v2;
  if (const runtime::CgroupMount* u = fs.mounts().unified()) {
    NQ_ASSIGN_OR_RETURN(std::filesystem::path dir, fs.dir(*u, u->root));
    const std::string file = (dir / "cgroup.controllers").string();
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::from_errno(errno, "open " + file);
    char buf[512];
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
    if (n < 0) return Error::from_errno(errno, "read " + file);
    std::string_view text(buf, static_cast<size_t>(n));
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find_first_of(" \n", start);
      if (end == std::string_view::npos) end = text.size();
      if (end > start) v2.emplace(text.substr(start, end - start));
      start = end + 1;
    }
  }
  return select_hierarchies(fs, v2);
}

Result<PodCgroupPlan> plan_pod_cgroups(const std::vector<Hierarchy>& hierarchies,
                                       std::string_view parent, std::string_view uid,
                                       const std::vector<ContainerLimits>& containers) {
  if (parent.empty() || parent.front() == '/' || parent.find("..") != std::string_view::npos)
    return Error::invalid_argument(
        "cgroup_parent", "\"" + std::string(parent) + "\" must be a relative path without \"..\"");
  if (uid.empty()) return Error::invalid_argument("uid", "must not be empty");
  PodCgroupPlan plan;
  const std::filesystem::path parent_rel(parent);
  const std::filesystem::path pod_rel = parent_rel / ("pod" + std::string(uid));
  plan.containers.resize(containers.size());

  for (const Hierarchy& h : hierarchies) {
    // Every level from the parent down, so a fresh host needs nothing prepared.
    std::filesystem::path level;
    for (const auto& part : parent_rel) {
      level /= part;
      plan.mkdirs.push_back(h.dir / level);
    }
    plan.mkdirs.push_back(h.dir / pod_rel);
    plan.pod_dirs.push_back((h.dir / pod_rel).string());
    for (size_t i = 0; i < containers.size(); ++i) {
      const std::filesystem::path rel = pod_rel / containers[i].name;
      plan.mkdirs.push_back(h.dir / rel);
      plan.containers[i].dirs.push_back((h.dir / rel).string());
      plan.containers[i].paths.by_hierarchy[h.key] = join_path(h.root, rel.string());
    }
  }

  // Pure v2: a controller's knobs appear in a child only once every ancestor
  // enabled it in cgroup.subtree_control, so enable them on the way down (the
  // pod level holds no process, which the no-internal-processes rule requires).
  for (const Hierarchy& h : hierarchies) {
    if (!h.v2) continue;
    std::string enable;
    for (std::string_view c : kV2Controllers) {
      if (!has(h, c)) continue;
      if (!enable.empty()) enable += ' ';
      enable += "+" + std::string(c);
    }
    if (enable.empty()) continue;  // hybrid host: the unified tree carries no controller
    plan.writes.push_back({h.dir / "cgroup.subtree_control", enable});
    std::filesystem::path level;
    for (const auto& part : pod_rel) {
      level /= part;
      plan.writes.push_back({h.dir / level / "cgroup.subtree_control", enable});
    }
  }

  Limits pod_limits;
  bool all_cpu = !containers.empty(), all_mem = !containers.empty();
  int64_t cpu = 0, mem = 0;
  for (const ContainerLimits& c : containers) {
    all_cpu = all_cpu && c.limits.cpu_millis.has_value();
    all_mem = all_mem && c.limits.memory_bytes.has_value();
    if (c.limits.cpu_millis) cpu += *c.limits.cpu_millis;
    if (c.limits.memory_bytes) mem += *c.limits.memory_bytes;
  }
  if (all_cpu) pod_limits.cpu_millis = cpu;
  if (all_mem) pod_limits.memory_bytes = mem;
  add_limits(plan.writes, hierarchies, pod_rel, pod_limits);
  for (const ContainerLimits& c : containers)
    add_limits(plan.writes, hierarchies, pod_rel / c.name, c.limits);
  return plan;
}

std::vector<std::string> removal_order(
    const std::vector<std::string>& pod_dirs,
    const std::vector<std::vector<std::string>>& container_dirs) {
  std::vector<std::string> out;
  for (const auto& dirs : container_dirs) out.insert(out.end(), dirs.begin(), dirs.end());
  out.insert(out.end(), pod_dirs.begin(), pod_dirs.end());
  return out;
}

Status apply_cgroup_plan(const PodCgroupPlan& plan) {
  for (const std::filesystem::path& d : plan.mkdirs) {
    if (::mkdir(d.c_str(), 0755) < 0 && errno != EEXIST)
      return Error::from_errno(errno, "mkdir " + d.string());
  }
  for (const CgroupWrite& w : plan.writes) NQ_TRY(write_knob(w.file, w.value));
  return ok();
}

Status kill_cgroup_processes(const std::vector<std::string>& dirs,
                             std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<pid_t> left;
    for (const std::string& d : dirs) {
      auto pids = runtime::read_cgroup_procs(d);
      if (!pids.ok()) {
        if (pids.error().sys_errno() == ENOENT) continue;  // already removed
        return std::move(pids).error();
      }
      for (pid_t p : *pids) {
        // ESRCH: it exited meanwhile. We only signal pids the kernel lists in
        // our own pod's cgroup, so a reused pid cannot be hit.
        if (::kill(p, SIGKILL) < 0 && errno != ESRCH)
          return Error::from_errno(errno, "kill " + std::to_string(p) + " in " + d);
        left.push_back(p);
      }
    }
    if (left.empty()) return ok();
    if (Clock::now() >= deadline) {
      std::string s;
      for (pid_t p : left) s += " " + std::to_string(p);
      return Error::unavailable("processes still in the pod's cgroups after SIGKILL:" + s);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status remove_cgroup_dirs(const std::vector<std::string>& dirs, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (const std::string& d : dirs) {
    for (;;) {
      if (::rmdir(d.c_str()) == 0 || errno == ENOENT) break;
      const int err = errno;
      if (err != EBUSY || Clock::now() >= deadline) return Error::from_errno(err, "rmdir " + d);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return ok();
}

int join_cgroups_after_fork(const int* procs_fds, size_t count) noexcept {
  for (size_t i = 0; i < count; ++i) {
    if (::write(procs_fds[i], "0", 1) < 0) return errno;
  }
  return 0;
}

}  // namespace nq::sandbox
