// Which cgroup hierarchies this node mounts, from /proc/self/mountinfo.
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <sstream>

#include "agent/caps/probe.h"
#include "common/fd.h"

namespace nq {
namespace {

// Every controller a v1 hierarchy can carry. Anything else in the super options
// is a mount option (rw, xattr, noprefix, clone_children, release_agent=...,
// name=..., cpuset_v2_mode, ...).
constexpr std::array<std::string_view, 15> kV1Controllers = {
    "blkio",  "cpu",  "cpuacct", "cpuset",   "debug",      "devices", "freezer", "hugetlb",
    "memory", "misc", "net_cls", "net_prio", "perf_event", "pids",    "rdma"};

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    size_t pos = s.find(sep);
    out.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return out;
    s.remove_prefix(pos + 1);
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(std::string_view s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) && octal(s[i + 3])) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

Result<std::string> read_small_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + path);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read " + path);
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

CgroupLayout parse_cgroup_mounts(std::string_view mountinfo) {
  CgroupLayout layout;
  for (std::string_view line : split(mountinfo, '\n')) {
    // "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS"
    std::vector<std::string_view> fields;
    for (std::string_view f : split(line, ' '))
      if (!f.empty()) fields.push_back(f);
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    const std::string_view fstype = dash[1];
    const std::string_view super_options = dash[3];
    const std::string mount_point = unescape(fields[4]);
    if (fstype == "cgroup2") {
      layout.v2_mount_points.push_back(mount_point);
    } else if (fstype == "cgroup") {
      CgroupMount m{mount_point, {}};
      for (std::string_view opt : split(super_options, ','))
        if (std::find(kV1Controllers.begin(), kV1Controllers.end(), opt) != kV1Controllers.end())
          m.controllers.emplace_back(opt);
      if (!m.controllers.empty()) layout.v1.push_back(std::move(m));
    }
  }
  return layout;
}

std::vector<Capability> cgroup_capabilities(const CgroupLayout& layout,
                                            std::string_view v2_controllers) {
  std::vector<Capability> out;
  for (const CgroupMount& m : layout.v1)
    for (const std::string& c : m.controllers)
      out.push_back(
          {"cgroup_v1." + c, true,
           "v1 hierarchy mounted at " + m.mount_point + " (" + join(m.controllers, ",") + ")"});
  if (layout.v2_mount_points.empty()) {
    out.push_back({"cgroup_v2", false, "no cgroup2 file system is mounted"});
    return out;
  }
  const std::string& root = layout.v2_mount_points.front();
  std::vector<std::string> controllers;
  std::istringstream words{std::string(v2_controllers)};
  for (std::string w; words >> w;) controllers.push_back(w);
  out.push_back({"cgroup_v2", true,
                 "cgroup2 mounted at " + root + ", controllers: " +
                     (controllers.empty() ? std::string("(none; they are bound to v1 hierarchies)")
                                          : join(controllers, " "))});
  for (const std::string& c : controllers)
    out.push_back({"cgroup_v2." + c, true, "offered by " + root + "/cgroup.controllers"});
  return out;
}

std::vector<Capability> probe_cgroups() {
  Result<std::string> mountinfo = read_small_file("/proc/self/mountinfo");
  if (!mountinfo.ok()) {
    return {{"cgroup_v2", false, mountinfo.error().message()}};
  }
  const CgroupLayout layout = parse_cgroup_mounts(*mountinfo);
  std::string v2_controllers;
  if (!layout.v2_mount_points.empty()) {
    Result<std::string> text =
        read_small_file(layout.v2_mount_points.front() + "/cgroup.controllers");
    if (text.ok()) v2_controllers = *text;
  }
  return cgroup_capabilities(layout, v2_controllers);
}

}  // namespace nq
