// Which cgroup hierarchies this node mounts, and what they offer. The mounts
// come from the runtime's mountinfo parser, the one every cgroup path of the
// agent is resolved with.
#include <fcntl.h>

#include <sstream>

#include "agent/caps/probe.h"
#include "common/file.h"

namespace nq {
namespace {

std::string join(const std::set<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

}  // namespace

std::vector<Capability> cgroup_capabilities(const runtime::CgroupMounts& mounts,
                                            std::string_view v2_controllers) {
  std::vector<Capability> out;
  for (const runtime::CgroupMount& m : mounts.mounts) {
    if (m.v2) continue;
    for (const std::string& c : m.controllers) {
      if (c.starts_with("name=")) continue;  // a named hierarchy controls nothing
      out.push_back({"cgroup_v1." + c, true,
                     "v1 hierarchy mounted at " + m.mount_point.string() + " (" +
                         join(m.controllers, ",") + ")"});
    }
  }
  const runtime::CgroupMount* v2 = mounts.unified();
  if (v2 == nullptr) {
    out.push_back({"cgroup_v2", false, "no cgroup2 file system is mounted"});
    return out;
  }
  const std::string root = v2->mount_point.string();
  std::set<std::string> controllers;
  std::vector<std::string> ordered;
  std::istringstream words{std::string(v2_controllers)};
  for (std::string w; words >> w;)
    if (controllers.insert(w).second) ordered.push_back(w);
  std::string listed;
  for (const auto& c : ordered) listed += (listed.empty() ? "" : " ") + c;
  out.push_back(
      {"cgroup_v2", true,
       "cgroup2 mounted at " + root + ", controllers: " +
           (ordered.empty() ? std::string("(none; they are bound to v1 hierarchies)") : listed)});
  for (const std::string& c : ordered)
    out.push_back({"cgroup_v2." + c, true, "offered by " + root + "/cgroup.controllers"});
  return out;
}

std::vector<Capability> probe_cgroups() {
  auto mounts = runtime::read_mountinfo("/proc/self/mountinfo");
  if (!mounts.ok()) return {{"cgroup_v2", false, mounts.error().message()}};
  std::string v2_controllers;
  if (const runtime::CgroupMount* v2 = mounts->unified()) {
    auto text = read_file(v2->mount_point / "cgroup.controllers");
    if (text.ok()) v2_controllers = *text;
  }
  return cgroup_capabilities(*mounts, v2_controllers);
}

}  // namespace nq
