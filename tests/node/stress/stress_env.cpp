#include "tests/node/stress/stress_env.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/process.h"
#include "common/file.h"

namespace nq::stress::testing {

sandbox::PodSpec limited_pod(const nq::testing::SandboxEnv& env, const std::string& name,
                             std::optional<int64_t> cpu_millis, std::optional<int64_t> memory_bytes,
                             std::vector<std::string> command) {
  sandbox::PodSpec p = env.pod(name, std::move(command));
  p.containers[0].limits.cpu_millis = cpu_millis;
  p.containers[0].limits.memory_bytes = memory_bytes;
  return p;
}

namespace {

uint64_t to_u64(const std::string& s) {
  return std::strtoull(s.c_str(), nullptr, 10);
}

}  // namespace

Result<uint64_t> cgroup_cpu_ns(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c) {
  if (fs.mounts().v1("cpuacct") && runtime::find_cgroup_path(c.cgroups, "cpuacct")) {
    NQ_ASSIGN_OR_RETURN(auto dir, fs.dir_for(c.cgroups, "cpuacct"));
    NQ_ASSIGN_OR_RETURN(auto text, read_file(dir / "cpuacct.usage"));
    return to_u64(text);
  }
  NQ_ASSIGN_OR_RETURN(auto dir, fs.dir_for(c.cgroups, ""));
  NQ_ASSIGN_OR_RETURN(auto text, read_file(dir / "cpu.stat"));
  std::istringstream in(text);
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "usage_usec") return value * 1000;
  }
  return Error::not_found("usage_usec in " + (dir / "cpu.stat").string());
}

Result<uint64_t> cgroup_memory_bytes(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c) {
  if (fs.mounts().v1("memory") && runtime::find_cgroup_path(c.cgroups, "memory")) {
    NQ_ASSIGN_OR_RETURN(auto dir, fs.dir_for(c.cgroups, "memory"));
    NQ_ASSIGN_OR_RETURN(auto text, read_file(dir / "memory.usage_in_bytes"));
    return to_u64(text);
  }
  NQ_ASSIGN_OR_RETURN(auto dir, fs.dir_for(c.cgroups, ""));
  NQ_ASSIGN_OR_RETURN(auto text, read_file(dir / "memory.current"));
  return to_u64(text);
}

Result<double> measure_cpu_percent(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c,
                                   double limit_cpus, std::chrono::milliseconds window) {
  const auto t0 = std::chrono::steady_clock::now();
  NQ_ASSIGN_OR_RETURN(uint64_t u0, cgroup_cpu_ns(fs, c));
  std::this_thread::sleep_for(window);
  NQ_ASSIGN_OR_RETURN(uint64_t u1, cgroup_cpu_ns(fs, c));
  const auto dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(u1 - u0) / 1e9 / dt / limit_cpus * 100.0;
}

Status prioritize_cpu(const runtime::CgroupFs& fs, const runtime::ContainerInfo& c,
                      const std::string& cgroup_parent) {
  const bool v1 = fs.mounts().v1("cpu") && runtime::find_cgroup_path(c.cgroups, "cpu");
  NQ_ASSIGN_OR_RETURN(std::filesystem::path dir, fs.dir_for(c.cgroups, v1 ? "cpu" : ""));
  for (int level = 0; level < 8; ++level) {
    NQ_TRY(write_knob(dir / (v1 ? "cpu.shares" : "cpu.weight"), v1 ? "262144" : "10000"));
    if (dir.filename() == cgroup_parent) return ok();
    dir = dir.parent_path();
  }
  return Error::not_found("cgroup parent " + cgroup_parent + " above the container's cgroup");
}

Result<double> process_cpu_seconds(pid_t pid) {
  NQ_ASSIGN_OR_RETURN(auto text, read_file("/proc/" + std::to_string(pid) + "/stat"));
  // Fields after the command name (which may hold spaces): state is 3,
  // utime 14 and stime 15.
  std::istringstream in(text.substr(text.rfind(')') + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = to_u64(field);
    if (i == 15) stime = to_u64(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

bool pid_gone(pid_t pid) {
  auto st = sandbox::read_proc_stat(pid);
  return !st.ok() || st->state == 'Z';
}

bool wait_pid_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pid_gone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string machine_load() {
  auto text = read_file("/proc/loadavg");
  return text.ok() ? "loadavg " + *text : "loadavg unknown";
}

}  // namespace nq::stress::testing
