#include "tests/support/sandbox_env.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agent/runtime/local/pod_network.h"

namespace nq::testing {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// argv of a process, one element per entry ("" when it is gone or a kernel thread).
std::vector<std::string> argv_of(const fs::path& proc_dir) {
  const std::string raw = read_text(proc_dir / "cmdline");
  std::vector<std::string> out;
  size_t start = 0;
  while (start < raw.size()) {
    const size_t end = raw.find('\0', start);
    out.push_back(raw.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

template <class Pred>
std::vector<pid_t> processes_where(Pred&& pred) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid()) continue;
    if (pred(argv_of(entry.path()))) out.push_back(pid);
  }
  return out;
}

// Our registry directory as a whole argv element (the shims get it as
// --state-dir, the agent as --sandbox-dir), or a path below it. A plain
// substring match would also hit "/tmp/nqt-sandbox-1234" for pid 123.
bool uses_dir(const std::vector<std::string>& argv, const std::string& dir) {
  for (const auto& a : argv) {
    if (a == dir || a.starts_with(dir + "/")) return true;
  }
  return false;
}

std::atomic<int> g_instances{0};

}  // namespace

std::string SandboxEnv::unavailable_reason() {
  if (::geteuid() != 0) return "needs root (netns, veth, bridge, cgroups, processes)";
  auto fs = runtime::CgroupFs::discover();
  if (!fs.ok()) return "cannot read the cgroup mounts: " + fs.error().message();
  if (fs->mounts().mounts.empty()) return "no cgroup hierarchy is mounted here";
  return "";
}

SandboxEnv::SandboxEnv() {
  const int pid = static_cast<int>(::getpid());
  const int instance = g_instances.fetch_add(1);
  // The first environment of a process keeps the plain names; more get a
  // letter (interface names must stay within 15 characters).
  const std::string tag =
      std::to_string(pid) + (instance == 0 ? "" : std::string(1, char('a' + instance % 26)));
  ns_ = "nqt-" + std::to_string(pid);
  suffix_ = "-" + std::to_string(pid);
  opts_.state_dir = fs::temp_directory_path() / ("nqt-sandbox-" + tag);
  opts_.bridge = "nqbrt" + tag;
  opts_.subnet = "10.214." + std::to_string((pid + instance) % 250) + ".0/24";
  opts_.cgroup_parent = "nqtest" + tag;
  opts_.netns_prefix = "nqt" + tag + "-";
  opts_.nq_echo = NQ_ECHO_PATH;
  opts_.shim_command = {NQCTL_PATH, "sandbox", "shim"};
  opts_.stop_timeout = std::chrono::seconds(8);
  if (auto cg = runtime::CgroupFs::discover(); cg.ok())
    cgroups_ = std::make_unique<runtime::CgroupFs>(std::move(*cg));
}

SandboxEnv::~SandboxEnv() {
  if (Status st = teardown(); !st.ok())
    std::cerr << "sandbox teardown: " << st.error().message() << "\n";
}

std::string SandboxEnv::key(const std::string& name, const std::string& namespace_name) const {
  return ns_or_default(namespace_name) + "/" + name;
}

sandbox::PodSpec SandboxEnv::pod(const std::string& name, std::vector<std::string> command,
                                 bool host_network) const {
  sandbox::PodSpec p;
  p.namespace_name = ns_;
  p.name = name;
  p.labels = {{"app", name}, {"chaos-ready", "true"}};
  p.host_network = host_network;
  p.where = "test.yaml:1";
  sandbox::ContainerSpec c;
  c.name = "main";
  c.command = std::move(command);
  c.limits.cpu_millis = 500;
  c.limits.memory_bytes = 64LL << 20;
  c.where = "test.yaml:2";
  p.containers.push_back(std::move(c));
  return p;
}

Result<sandbox::UpReport> SandboxEnv::up(const std::vector<sandbox::PodSpec>& pods) {
  return sandbox::sandbox_up(pods, opts_);
}

Status SandboxEnv::teardown() {
  if (::geteuid() != 0) return ok();  // nothing can have been created
  Status result = ok();
  if (auto down = sandbox::sandbox_down_all(opts_); !down.ok()) result = std::move(down).error();

  // Safety net; each step tolerates absence.
  for (pid_t p :
       processes_where([&](const auto& argv) { return uses_dir(argv, opts_.state_dir.string()); }))
    ::kill(p, SIGKILL);
  (void)sandbox::remove_bridge(opts_.bridge);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(opts_.netns_dir, ec)) {
    if (entry.path().filename().string().starts_with(opts_.netns_prefix))
      (void)remove_named_netns(entry.path().string());
  }
  if (cgroups_) {
    for (const runtime::CgroupMount& m : cgroups_->mounts().mounts) {
      auto dir = cgroups_->dir(m, m.root);
      if (!dir.ok()) continue;
      // Leaf first: a test that failed half way may have left pod cgroups.
      const fs::path parent = *dir / opts_.cgroup_parent;
      if (!fs::exists(parent, ec)) continue;
      std::vector<fs::path> dirs;
      for (auto it = fs::recursive_directory_iterator(parent, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_directory(ec)) dirs.push_back(it->path());
      }
      for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) fs::remove(*it, ec);
      fs::remove(parent, ec);
    }
  }
  fs::remove_all(opts_.state_dir, ec);
  return result;
}

Result<sandbox::PodRecord> SandboxEnv::record(const std::string& name,
                                              const std::string& namespace_name) const {
  return sandbox::Registry(opts_.state_dir).get(ns_or_default(namespace_name), name);
}

std::string SandboxEnv::netns_path(const std::string& name,
                                   const std::string& namespace_name) const {
  return (opts_.netns_dir / (opts_.netns_prefix + ns_or_default(namespace_name) + "." + name))
      .string();
}

Result<Netns> SandboxEnv::netns(const std::string& name, const std::string& namespace_name) const {
  NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec, record(name, namespace_name));
  if (rec.netns_path.empty())
    return Error::failed_precondition("pod " + rec.key() + " has no netns (hostNetwork)");
  return Netns::open(rec.netns_path);
}

Result<std::string> SandboxEnv::ip(const std::string& name,
                                   const std::string& namespace_name) const {
  NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec, record(name, namespace_name));
  if (rec.ips.empty()) return Error::failed_precondition("pod " + rec.key() + " has no IP");
  return rec.ips.front();
}

Result<pid_t> SandboxEnv::pid(const std::string& name, const std::string& namespace_name) const {
  NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec, record(name, namespace_name));
  if (rec.containers.empty() || rec.containers.front().pid <= 0)
    return Error::failed_precondition("pod " + rec.key() + " has no running container");
  return rec.containers.front().pid;
}

std::vector<pid_t> SandboxEnv::processes_with(const std::string& needle) {
  return processes_where([&](const std::vector<std::string>& argv) {
    std::string line;
    for (const auto& a : argv) line += a + " ";
    return line.find(needle) != std::string::npos;
  });
}

}  // namespace nq::testing
