#include "bench/bench_sandbox.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/pod_network.h"
#include "agent/runtime/local/registry.h"
#include "common/netns.h"

namespace nq::bench {
namespace {

sandbox::PodSpec pod_spec(const std::string& ns, const std::string& name) {
  sandbox::PodSpec p;
  p.namespace_name = ns;
  p.name = name;
  p.labels = {{"app", name}, {"chaos-ready", "true"}};
  p.where = "nq-bench-apply";
  sandbox::ContainerSpec c;
  c.name = "main";  // empty command: nq-echo, ready once it answers on 8080
  // No CPU limit: a CFS quota on the echo server would add its own
  // throttling jitter to the connect checks, which are not what is measured.
  c.limits.memory_bytes = 64LL << 20;
  c.where = p.where;
  p.containers.push_back(std::move(c));
  return p;
}

// Pids of processes whose command line contains `needle` (the shims carry
// the registry directory in theirs).
std::vector<pid_t> processes_with(const std::string& needle) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string cmdline = ss.str();
    for (char& c : cmdline)
      if (c == '\0') c = ' ';
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (cmdline.find(needle) != std::string::npos && pid != ::getpid()) out.push_back(pid);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<BenchSandbox>> BenchSandbox::up(const BenchSandboxConfig& config) {
  const pid_t self = ::getpid();
  sandbox::SandboxOptions o;
  o.state_dir = config.registry_dir;
  o.bridge = "nqbrb" + std::to_string(self % 1000);
  o.subnet = "10.215." + std::to_string(self % 250) + ".0/24";
  o.cgroup_parent = "nqbench" + std::to_string(self);
  o.netns_prefix = "nqb" + std::to_string(self) + "-";
  o.nq_echo = config.nq_echo;
  o.shim_command = {config.nqctl, "sandbox", "shim"};
  o.stop_timeout = std::chrono::seconds(8);

  std::unique_ptr<BenchSandbox> sb(new BenchSandbox(o));
  sb->namespace_name_ = "nqb-" + std::to_string(self);
  // From here the destructor cleans up whatever `up` got to create.
  auto report = sandbox::sandbox_up(
      {pod_spec(sb->namespace_name_, "client"), pod_spec(sb->namespace_name_, "server")}, o);
  if (!report.ok()) return std::move(report).error().wrapped("sandbox up");
  NQ_ASSIGN_OR_RETURN(sb->client_, sb->resolve(sb->namespace_name_, "client"));
  NQ_ASSIGN_OR_RETURN(sb->server_, sb->resolve(sb->namespace_name_, "server"));
  return sb;
}

Result<BenchPod> BenchSandbox::resolve(const std::string& ns, const std::string& name) const {
  NQ_ASSIGN_OR_RETURN(sandbox::PodRecord rec, sandbox::Registry(opts_.state_dir).get(ns, name));
  if (rec.ips.empty() || rec.netns_path.empty())
    return Error::internal("pod " + rec.key() + " has no address or netns of its own");
  if (rec.containers.empty() || rec.containers[0].pid <= 0)
    return Error::internal("pod " + rec.key() + " has no running container");
  return BenchPod{rec.namespace_name, rec.name, rec.ips[0], rec.netns_path, rec.containers[0].pid};
}

Status BenchSandbox::down() {
  if (down_) return ok();
  auto report = sandbox::sandbox_down_all(opts_);
  // The safety net runs whatever `down` said: each step tolerates absence.
  for (pid_t p : processes_with(opts_.state_dir.string())) ::kill(p, SIGKILL);
  (void)sandbox::remove_bridge(opts_.bridge);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(opts_.netns_dir, ec)) {
    if (entry.path().filename().string().starts_with(opts_.netns_prefix))
      (void)remove_named_netns(entry.path().string());
  }
  if (auto fs = runtime::CgroupFs::discover(); fs.ok()) {
    for (const runtime::CgroupMount& m : fs->mounts().mounts) {
      auto dir = fs->dir(m, m.root);
      if (dir.ok()) std::filesystem::remove(*dir / opts_.cgroup_parent, ec);
    }
  }
  std::filesystem::remove_all(opts_.state_dir, ec);
  down_ = true;
  if (!report.ok()) return std::move(report).error().wrapped("sandbox down");
  return ok();
}

BenchSandbox::~BenchSandbox() {
  if (Status st = down(); !st.ok())
    std::fprintf(stderr, "nq-bench-apply: cleanup: %s\n", st.error().message().c_str());
}

}  // namespace nq::bench
