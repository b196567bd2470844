// Creating and destroying sandbox pods: `nqctl sandbox up/down`.
//
// Per pod (unless hostNetwork): a netns pinned at <netns_dir>/<prefix><ns>.<name>,
// a veth pair (host side nq<8 hex of uid> on the bridge, eth0 inside with the
// next free address), then cgroups <parent>/pod<uid>/<container> in every
// hierarchy with the limits, then a shim that runs the containers. The
// registry record is written first and removed last, so `down` finds whatever
// a failure or crash left; `up` undoes its own pods when it fails half way.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/local/pods_file.h"
#include "agent/runtime/local/registry.h"
#include "common/result.h"

namespace nq::sandbox {

struct SandboxOptions {
  std::filesystem::path state_dir = kDefaultStateDir;
  std::string bridge = "nqbr0";
  std::string subnet = "10.213.0.0/24";
  std::string cgroup_parent = "nodequake";
  std::filesystem::path netns_dir = "/run/netns";
  std::string netns_prefix = "nq-";
  // The bundled workload (default command, and what "nq-echo" as command[0] means).
  std::filesystem::path nq_echo;
  // argv prefix that starts a shim, e.g. {"/path/nqctl", "sandbox", "shim"}.
  std::vector<std::string> shim_command;
  std::chrono::milliseconds shim_ready_timeout{10'000};
  // How long `up` waits for the readiness probes of the pods it created.
  std::chrono::milliseconds ready_timeout{10'000};
  // How long `down` waits for a shim after SIGTERM before SIGKILL (the shim
  // itself gives its containers kStopGrace).
  std::chrono::milliseconds stop_timeout{10'000};
  // Prefix under which the host's /proc/self/mountinfo and cgroupfs are seen.
  std::filesystem::path host_root = "/";
};

// The argv a container runs: the bundled nq-echo by default ("--name <pod>"),
// "nq-echo" as the program also means the bundled one; a program without a
// '/' is looked up in `path_env` like execvp would. InvalidArgument naming
// "<where>: spec.containers[i].command[0]" when no executable is found.
Result<std::vector<std::string>> resolve_command(const PodSpec& pod, size_t container_index,
                                                 const std::filesystem::path& nq_echo,
                                                 std::string_view path_env);

// nq-echo's HTTP port: the implicit readiness probe of the default command.
inline constexpr int kNqEchoHttpPort = 8080;
// The container's readiness probe port: its own, else 8080 for the default
// command (nq-echo), else none (0).
int effective_readiness_port(const ContainerSpec& c);

// A fresh random (v4) UUID, like Kubernetes pod uids.
Result<std::string> new_uid();

struct UpReport {
  std::vector<std::string> created;    // "ns/name"
  std::vector<std::string> unchanged;  // already up with the same spec
};

// Brings up every pod and waits for their readiness probes (a pod that does
// not get ready in time fails `up`, which then undoes what it created).
// A pod already up with the same spec is left alone; one
// whose shim died is recreated; a different spec is FailedPrecondition (run
// down first). Every spec is checked before anything is created.
Result<UpReport> sandbox_up(const std::vector<PodSpec>& pods, const SandboxOptions& opts);

struct DownReport {
  std::vector<std::string> removed;
  std::vector<std::string> absent;  // not in the registry: nothing to do
};

// Removes the pods named "ns/name" (idempotent), then the bridge and the
// cgroup parent when no pod uses them any more.
Result<DownReport> sandbox_down(const std::vector<std::string>& keys, const SandboxOptions& opts);
Result<DownReport> sandbox_down_all(const SandboxOptions& opts);

// Everything of one pod, in order: the shim (SIGTERM, then SIGKILL), any
// process left in its cgroups, the cgroups (leaf first), the veth, the netns,
// its log and finally its record. Tolerates any partial state; keeps the
// record when a step fails so a later `down` can finish.
Status teardown_pod(const PodRecord& rec, const Registry& registry, const SandboxOptions& opts);

}  // namespace nq::sandbox
