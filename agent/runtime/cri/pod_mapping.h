// The pure half of the cri runtime: CRI messages and the runtimes' verbose
// `info` JSON turned into runtime::PodInfo. No I/O here, so every quirk of
// what containerd (or CRI-O) reports is unit-tested from samples.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "agent/runtime/runtime.h"
#include "common/result.h"
#include "cri/runtime_v1.pb.h"

namespace nq::cri {

namespace criv1 = ::runtime::v1;

// What the verbose status of a sandbox or container tells beyond the typed
// fields. containerd (and CRI-O) put one JSON document under the key "info":
// {"pid": 1234, "runtimeSpec": {"linux": {"namespaces": [{"type": "network",
// "path": "/var/run/netns/cni-..."}], "cgroupsPath": "..."}}, ...}.
struct VerboseInfo {
  pid_t pid = 0;             // 0: not reported (or not running)
  std::string netns_path;    // the spec's network namespace path, as the host sees it
  std::string cgroups_path;  // the spec's linux.cgroupsPath (driver-specific syntax)
};

// The document under "info" in a verbose status' info map; "" when absent
// (a runtime that does not do verbose, or a non-verbose call).
std::string info_document(const google::protobuf::Map<std::string, std::string>& info);

// Parses that document. Missing fields stay at their zero value -- what the
// runtimes put there is not part of the CRI contract and varies by version;
// an empty document is an empty VerboseInfo. Only text that is not JSON (or
// a field of the wrong type) is an error, naming the field.
Result<VerboseInfo> parse_verbose_info(std::string_view json);

// Where the agent finds the host's files: netns paths the runtime reports
// are host paths, and the agent in a DaemonSet sees the host's / at
// host_root; /proc is the host's when the pod has hostPID.
struct PathRoots {
  std::filesystem::path host_root = "/";
  std::filesystem::path proc_root = "/proc";
};

// `path` (absolute, on the host) as the agent sees it.
std::filesystem::path under_root(const std::filesystem::path& root, const std::string& path);

// The pod as far as the sandbox tells: identity, labels, IPs, host
// networking, and the netns path (empty with host networking; else the spec's
// path under host_root, else /proc/<sandbox pid>/ns/net). Containers are
// added by the caller.
runtime::PodInfo map_sandbox(const criv1::PodSandboxStatus& status, const VerboseInfo& info,
                             const PathRoots& roots);

// One container, without cgroups (those come from /proc/<pid>/cgroup of the
// live process). pid is kept only for a running container.
runtime::ContainerInfo map_container(const criv1::ContainerStatus& status, const VerboseInfo& info);

}  // namespace nq::cri
