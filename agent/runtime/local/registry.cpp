#include "agent/runtime/local/registry.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>

#include "common/file.h"

namespace nq::sandbox {
namespace {

using nlohmann::json;

constexpr std::string_view kSuffix = ".json";
constexpr std::string_view kTmpSuffix = ".json.tmp";

json limits_json(const Limits& l) {
  json j = json::object();
  if (l.cpu_millis) j["cpu_millis"] = *l.cpu_millis;
  if (l.memory_bytes) j["memory_bytes"] = *l.memory_bytes;
  return j;
}

Limits limits_from(const json& j) {
  Limits l;
  if (j.contains("cpu_millis")) l.cpu_millis = j.at("cpu_millis").get<int64_t>();
  if (j.contains("memory_bytes")) l.memory_bytes = j.at("memory_bytes").get<int64_t>();
  return l;
}

}  // namespace

std::string to_json(const PodRecord& r) {
  json containers = json::array();
  for (const ContainerRecord& c : r.containers) {
    containers.push_back({{"name", c.name},
                          {"id", c.id},
                          {"argv", c.argv},
                          {"limits", limits_json(c.limits)},
                          {"readiness_port", c.readiness_port},
                          {"pid", c.pid},
                          {"pid_start_time", c.pid_start_time},
                          {"restart_count", c.restart_count},
                          {"last_exit", c.last_exit},
                          {"cgroups", c.cgroups.by_hierarchy},
                          {"cgroup_dirs", c.cgroup_dirs}});
  }
  const json j = {{"namespace", r.namespace_name},
                  {"name", r.name},
                  {"uid", r.uid},
                  {"labels", r.labels},
                  {"host_network", r.host_network},
                  {"netns_path", r.netns_path},
                  {"ips", r.ips},
                  {"ip_cidr", r.ip_cidr},
                  {"host_veth", r.host_veth},
                  {"bridge", r.bridge},
                  {"cgroup_parent", r.cgroup_parent},
                  {"cgroup_dirs", r.cgroup_dirs},
                  {"shim_pid", r.shim_pid},
                  {"shim_start_time", r.shim_start_time},
                  {"log_path", r.log_path},
                  {"containers", containers}};
  return j.dump(2) + "\n";
}

Result<PodRecord> pod_from_json(std::string_view text, std::string_view origin) {
  // nlohmann reports parse and type errors by exception; they end here.
  try {
    const json j = json::parse(text);
    PodRecord r;
    r.namespace_name = j.at("namespace").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.uid = j.at("uid").get<std::string>();
    r.labels = j.at("labels").get<std::map<std::string, std::string>>();
    r.host_network = j.at("host_network").get<bool>();
    r.netns_path = j.at("netns_path").get<std::string>();
    r.ips = j.at("ips").get<std::vector<std::string>>();
    r.ip_cidr = j.at("ip_cidr").get<std::string>();
    r.host_veth = j.at("host_veth").get<std::string>();
    r.bridge = j.at("bridge").get<std::string>();
    r.cgroup_parent = j.at("cgroup_parent").get<std::string>();
    r.cgroup_dirs = j.at("cgroup_dirs").get<std::vector<std::string>>();
    r.shim_pid = j.at("shim_pid").get<pid_t>();
    r.shim_start_time = j.at("shim_start_time").get<uint64_t>();
    r.log_path = j.at("log_path").get<std::string>();
    for (const json& cj : j.at("containers")) {
      ContainerRecord c;
      c.name = cj.at("name").get<std::string>();
      c.id = cj.at("id").get<std::string>();
      c.argv = cj.at("argv").get<std::vector<std::string>>();
      c.limits = limits_from(cj.at("limits"));
      c.readiness_port = cj.at("readiness_port").get<int>();
      c.pid = cj.at("pid").get<pid_t>();
      c.pid_start_time = cj.at("pid_start_time").get<uint64_t>();
      c.restart_count = cj.at("restart_count").get<int>();
      c.last_exit = cj.at("last_exit").get<std::string>();
      c.cgroups.by_hierarchy = cj.at("cgroups").get<std::map<std::string, std::string>>();
      c.cgroup_dirs = cj.at("cgroup_dirs").get<std::vector<std::string>>();
      r.containers.push_back(std::move(c));
    }
    return r;
  } catch (const json::exception& e) {
    return Error::status(Code::kDataLoss, std::string(origin) + ": bad pod record: " + e.what());
  }
}

Status Registry::ensure_dir() const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Error(ec, "create state dir " + dir_.string());
  if (::chmod(dir_.c_str(), 0700) < 0) return Error::from_errno(errno, "chmod " + dir_.string());
  return ok();
}

Result<RegistryLock> Registry::lock() const {
  NQ_TRY(ensure_dir());
  const std::string path = (dir_ / ".lock").string();
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno(errno, "open " + path);
  while (::flock(fd.get(), LOCK_EX) < 0) {
    if (errno != EINTR) return Error::from_errno(errno, "flock " + path);
  }
  return RegistryLock(std::move(fd));
}

std::filesystem::path Registry::file_for(std::string_view ns, std::string_view name) const {
  // Namespaces and names are DNS labels, which never contain '_'.
  return dir_ / (std::string(ns) + "_" + std::string(name) + std::string(kSuffix));
}

Status Registry::put(const PodRecord& rec) const {
  NQ_TRY(ensure_dir());
  const std::filesystem::path final_path = file_for(rec.namespace_name, rec.name);
  const std::string tmp = dir_ / (rec.namespace_name + "_" + rec.name + std::string(kTmpSuffix));
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno(errno, "create " + tmp);
  NQ_TRY(write_all(fd.get(), to_json(rec), tmp));
  // fsync before rename: a reader (or a reboot-free crash) sees the old or the new file.
  if (::fsync(fd.get()) < 0) return Error::from_errno(errno, "fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), final_path.c_str()) < 0)
    return Error::from_errno(errno, "rename " + tmp + " to " + final_path.string());
  return ok();
}

Result<PodRecord> Registry::get(std::string_view ns, std::string_view name) const {
  const std::filesystem::path path = file_for(ns, name);
  auto text = read_file(path);
  if (!text.ok()) {
    if (text.error().sys_errno() == ENOENT)
      return Error::not_found("sandbox pod " + std::string(ns) + "/" + std::string(name) +
                              " not found");
    return std::move(text).error();
  }
  return pod_from_json(*text, path.string());
}

Result<std::vector<PodRecord>> Registry::list() const {
  std::vector<PodRecord> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return Error(ec, "list " + dir_.string());
  }
  for (const auto& entry : it) {
    const std::string file = entry.path().filename().string();
    if (!file.ends_with(kSuffix) || file.starts_with(".")) continue;
    auto text = read_file(entry.path());
    if (!text.ok()) {
      // Removed by a concurrent `down` between listing and reading.
      if (text.error().sys_errno() == ENOENT) continue;
      return std::move(text).error();
    }
    NQ_ASSIGN_OR_RETURN(PodRecord rec, pod_from_json(*text, entry.path().string()));
    out.push_back(std::move(rec));
  }
  std::sort(out.begin(), out.end(),
            [](const PodRecord& a, const PodRecord& b) { return a.key() < b.key(); });
  return out;
}

Status Registry::remove(std::string_view ns, std::string_view name) const {
  const std::string base = std::string(ns) + "_" + std::string(name);
  for (const std::string& path :
       {(dir_ / (base + std::string(kTmpSuffix))).string(), file_for(ns, name).string()}) {
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
      return Error::from_errno(errno, "remove " + path);
  }
  return ok();
}

}  // namespace nq::sandbox
