// Sandbox pods of a test's own (agent/runtime/local/sandbox.h): a temporary
// registry, bridge, subnet, netns prefix and cgroup parent, all named after
// the test's pid so concurrent runs and a real sandbox on the machine never
// collide. The destructor brings every pod down and then, as a safety net for
// a test that failed half way, removes anything that carries the test's names.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/pods_file.h"
#include "agent/runtime/local/registry.h"
#include "agent/runtime/local/sandbox.h"
#include "common/netns.h"
#include "common/result.h"

namespace nq::testing {

class SandboxEnv {
 public:
  // Why sandbox pods cannot run here ("" when they can): they need root and a
  // mounted cgroup hierarchy.
  static std::string unavailable_reason();

  // Picks the names; creates nothing. A second environment in the same
  // process gets names of its own too.
  SandboxEnv();
  // teardown(), its errors logged to stderr (call it yourself to check them).
  ~SandboxEnv();
  SandboxEnv(const SandboxEnv&) = delete;
  SandboxEnv& operator=(const SandboxEnv&) = delete;

  // What sandbox_up/down are called with; a test may adjust the timeouts.
  sandbox::SandboxOptions& options() { return opts_; }
  const sandbox::SandboxOptions& options() const { return opts_; }
  // The pods' default namespace, "nqt-<pid>".
  const std::string& ns() const { return ns_; }
  // "-<pid>", to make pod names or commands unique on the machine.
  const std::string& suffix() const { return suffix_; }
  // The cgroup hierarchies; null when none is mounted (see unavailable_reason()).
  const runtime::CgroupFs* cgroups() const { return cgroups_.get(); }

  // "<namespace>/<name>"; `namespace_name` "" means ns().
  std::string key(const std::string& name, const std::string& namespace_name = "") const;
  // A pod in ns() labelled app=<name> and chaos-ready=true, with one container
  // "main" (500m CPU, 64Mi) running `command`, or nq-echo when it is empty.
  sandbox::PodSpec pod(const std::string& name, std::vector<std::string> command = {},
                       bool host_network = false) const;

  Result<sandbox::UpReport> up(const std::vector<sandbox::PodSpec>& pods);
  // Every pod down (through sandbox_down_all), then the safety net: processes
  // started with our registry directory in their argv, netns pins with our
  // prefix, the bridge, the cgroup parent, the registry directory. Idempotent;
  // a no-op without root. Returns the error of the regular `down`, if any.
  Status teardown();

  // ---- one pod, by name in ns() (or `namespace_name`)
  Result<sandbox::PodRecord> record(const std::string& name,
                                    const std::string& namespace_name = "") const;
  // Where the pod's netns is pinned (whether or not it exists).
  std::string netns_path(const std::string& name, const std::string& namespace_name = "") const;
  Result<Netns> netns(const std::string& name, const std::string& namespace_name = "") const;
  // The pod's (first) IP address.
  Result<std::string> ip(const std::string& name, const std::string& namespace_name = "") const;
  // The pid of the pod's first container.
  Result<pid_t> pid(const std::string& name, const std::string& namespace_name = "") const;

  // Pids of processes (other than this one) whose command line contains `needle`.
  static std::vector<pid_t> processes_with(const std::string& needle);

 private:
  const std::string& ns_or_default(const std::string& namespace_name) const {
    return namespace_name.empty() ? ns_ : namespace_name;
  }

  sandbox::SandboxOptions opts_;
  std::string ns_;
  std::string suffix_;
  std::unique_ptr<runtime::CgroupFs> cgroups_;
};

}  // namespace nq::testing
