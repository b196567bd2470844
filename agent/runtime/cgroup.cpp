#include "agent/runtime/cgroup.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <map>

#include "common/fd.h"
#include "common/file.h"

namespace nq::runtime {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo (octal).
std::string unescape_octal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        const char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// The v1 controllers a cgroup super-option list can name; everything else in
// it ("rw", "clone_children", "release_agent=...") is a mount option.
bool is_v1_controller(std::string_view opt) {
  static constexpr std::string_view kControllers[] = {
      "cpuset",  "cpu",      "cpuacct",    "io",      "blkio", "memory", "devices", "freezer",
      "net_cls", "net_prio", "perf_event", "hugetlb", "pids",  "rdma",   "misc",    "debug"};
  if (opt.starts_with("name=")) return true;
  for (std::string_view c : kControllers)
    if (opt == c) return true;
  return false;
}

// Does `path` lie under `root` (component-wise)? Sets `rest` to the remainder.
bool strip_root(std::string_view path, std::string_view root, std::string_view& rest) {
  while (root.size() > 1 && root.back() == '/') root.remove_suffix(1);
  if (root.empty() || root == "/") {
    rest = path;
    return true;
  }
  if (!path.starts_with(root)) return false;
  rest = path.substr(root.size());
  return rest.empty() || rest.front() == '/';
}

// Components of a mount's root: "/" has none, "/kubepods/pod1" two.
size_t depth(std::string_view root) {
  size_t n = 0;
  for (std::string_view c : split(root, '/'))
    if (!c.empty()) ++n;
  return n;
}

bool is_under(const std::filesystem::path& path, const std::filesystem::path& dir) {
  if (dir.empty() || dir == "/") return true;
  auto p = path.begin();
  for (auto d = dir.begin(); d != dir.end(); ++d, ++p) {
    if (d->empty()) continue;  // a trailing "/" in dir
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

// Should `later` (listed after `kept`) replace it? See parse_mountinfo.
bool better_mount(const CgroupMount& later, const CgroupMount& kept,
                  const std::filesystem::path& prefer_under) {
  const size_t dl = depth(later.root), dk = depth(kept.root);
  if (dl != dk) return dl < dk;
  const bool ul = is_under(later.mount_point, prefer_under);
  const bool uk = is_under(kept.mount_point, prefer_under);
  if (ul != uk) return ul;
  return later.mount_point == kept.mount_point;
}

}  // namespace

CgroupPaths parse_proc_cgroup(std::string_view text) {
  CgroupPaths paths;
  for (std::string_view line : split(text, '\n')) {
    // The path itself may contain ':' (it is a directory name), so split twice only.
    const size_t a = line.find(':');
    if (a == std::string_view::npos) continue;
    const size_t b = line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    paths.by_hierarchy[std::string(line.substr(a + 1, b - a - 1))] =
        std::string(line.substr(b + 1));
  }
  return paths;
}

Result<CgroupPaths> read_proc_cgroup(pid_t pid, const std::filesystem::path& proc_root) {
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(proc_root / std::to_string(pid) / "cgroup"));
  return parse_proc_cgroup(text);
}

const std::string* find_cgroup_path(const CgroupPaths& paths, std::string_view controller) {
  for (const auto& [key, path] : paths.by_hierarchy) {
    if (controller.empty()) {
      if (key.empty()) return &path;
      continue;
    }
    for (std::string_view c : split(key, ','))
      if (c == controller) return &path;
  }
  return nullptr;
}

const CgroupMount* CgroupMounts::v1(std::string_view controller) const {
  for (const CgroupMount& m : mounts)
    if (!m.v2 && m.controllers.count(std::string(controller))) return &m;
  return nullptr;
}

const CgroupMount* CgroupMounts::unified() const {
  for (const CgroupMount& m : mounts)
    if (m.v2) return &m;
  return nullptr;
}

bool CgroupMounts::pure_v2() const {
  for (const CgroupMount& m : mounts)
    if (!m.v2) {
      for (const std::string& c : m.controllers)
        if (!c.starts_with("name=")) return false;
    }
  return unified() != nullptr;
}

Result<CgroupMounts> parse_mountinfo(std::string_view text,
                                     const std::filesystem::path& prefer_under) {
  CgroupMounts out;
  std::map<std::string, size_t> seen;  // hierarchy key ("" is v2) -> index in out.mounts
  int lineno = 0;
  for (std::string_view line : split(text, '\n')) {
    ++lineno;
    if (line.empty()) continue;
    const auto bad = [&](std::string_view what) {
      return Error::invalid_argument("mountinfo:" + std::to_string(lineno), what);
    };
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    std::vector<std::string_view> f;
    for (std::string_view tok : split(line, ' '))
      if (!tok.empty()) f.push_back(tok);
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 7 || dash + 1 >= f.size())
      return bad("expected \"ID PARENT DEV ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE OPTIONS\"");
    const std::string_view fstype = f[dash + 1];
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupMount m;
    m.v2 = fstype == "cgroup2";
    m.root = unescape_octal(f[3]);
    m.mount_point = unescape_octal(f[4]);
    if (!m.v2) {
      if (dash + 3 >= f.size()) return bad("cgroup mount without super options");
      std::string key;
      for (std::string_view opt : split(f[dash + 3], ',')) {
        if (!is_v1_controller(opt)) continue;
        m.controllers.emplace(opt);
        if (!key.empty()) key += ',';
        key += opt;
      }
      if (m.controllers.empty()) continue;  // not a hierarchy a process can be placed in
      m.key = std::move(key);
    }
    // The same hierarchy mounted twice (bind mounts) is one hierarchy.
    auto [it, fresh] = seen.emplace(m.v2 ? std::string() : m.key, out.mounts.size());
    if (fresh) {
      out.mounts.push_back(std::move(m));
    } else if (better_mount(m, out.mounts[it->second], prefer_under)) {
      out.mounts[it->second] = std::move(m);
    }
  }
  return out;
}

Result<CgroupMounts> read_mountinfo(const std::filesystem::path& path,
                                    const std::filesystem::path& prefer_under) {
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(path));
  auto mounts = parse_mountinfo(text, prefer_under);
  if (!mounts.ok()) return std::move(mounts).error().wrapped(path.string());
  return mounts;
}

Result<CgroupFs> CgroupFs::discover(const std::filesystem::path& host_root,
                                    const std::filesystem::path& mountinfo) {
  NQ_ASSIGN_OR_RETURN(CgroupMounts mounts, read_mountinfo(mountinfo, host_root));
  // Mount points in our own table are our own paths: no prefix.
  return CgroupFs(std::move(mounts));
}

Result<std::filesystem::path> CgroupFs::dir(const CgroupMount& mount, std::string_view path) const {
  std::string_view rest;
  if (!strip_root(path, mount.root, rest))
    return Error::invalid_argument(
        "cgroup", "\"" + std::string(path) + "\" is outside the part of hierarchy \"" + mount.key +
                      "\" mounted at " + mount.mount_point.string() + " (" + mount.root + ")");
  std::filesystem::path out = prefix_ / mount.mount_point.relative_path();
  while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
  if (!rest.empty()) out /= std::filesystem::path(rest);
  return out;
}

Result<std::filesystem::path> CgroupFs::dir_for(const CgroupPaths& paths,
                                                std::string_view controller) const {
  const CgroupMount* mount = controller.empty() ? mounts_.unified() : mounts_.v1(controller);
  const std::string name = controller.empty() ? std::string("the unified (v2) hierarchy")
                                              : "controller \"" + std::string(controller) + "\"";
  if (mount == nullptr) return Error::not_found(name + " is not mounted");
  const std::string* path = find_cgroup_path(paths, controller);
  if (path == nullptr) return Error::not_found("process is in no cgroup of " + name);
  return dir(*mount, *path);
}

Result<std::vector<pid_t>> read_cgroup_procs(const std::filesystem::path& dir) {
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(dir / "cgroup.procs"));
  std::vector<pid_t> pids;
  for (std::string_view line : split(text, '\n')) {
    if (line.empty()) continue;
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
    if (ec != std::errc() || end != line.data() + line.size())
      return Error::internal("unexpected line \"" + std::string(line) + "\" in " +
                             (dir / "cgroup.procs").string());
    pids.push_back(pid);
  }
  return pids;
}

Result<CgroupNamespace> join_cgroup_namespace_of(pid_t init_pid) {
  const std::string theirs = "/proc/" + std::to_string(init_pid) + "/ns/cgroup";
  struct stat own_ns {
  }, their_ns{};
  if (::stat("/proc/self/ns/cgroup", &own_ns) < 0)
    return Error::from_errno(errno, "stat /proc/self/ns/cgroup");
  if (::stat(theirs.c_str(), &their_ns) < 0) return Error::from_errno(errno, "stat " + theirs);
  if (own_ns.st_ino == their_ns.st_ino && own_ns.st_dev == their_ns.st_dev)
    return CgroupNamespace::kAlreadyShared;
  UniqueFd fd(::open(theirs.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + theirs);
  if (::setns(fd.get(), CLONE_NEWCGROUP) < 0)
    return Error::from_errno(errno,
                             "setns into the cgroup namespace of pid " + std::to_string(init_pid));
  return CgroupNamespace::kJoined;
}

}  // namespace nq::runtime
