// Validation of Apply requests: everything a client can get wrong is caught
// here, before the journal or the kernel is touched, with an error that names
// the field ("spec.netem.loss: 150 is outside 0..100").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "agent/delay/plan.h"
#include "agent/net/netem.h"
#include "agent/net/path.h"
#include "common/result.h"

namespace nodequake::v1 {
class ApplyRequest;
class FaultSpec;
}  // namespace nodequake::v1

namespace nq::core {

enum class FaultKind {
  kNetem,
  kBandwidth,
  kPartition,
  kCpuStress,
  kMemoryStress,
  kContainerKill,
  kPodKill,
  kPodFailure,
  kIoErrno,
  kIoThrottle,
  kDiskFill,
};

inline constexpr FaultKind kAllFaultKinds[] = {
    FaultKind::kNetem,      FaultKind::kBandwidth,    FaultKind::kPartition,
    FaultKind::kCpuStress,  FaultKind::kMemoryStress, FaultKind::kContainerKill,
    FaultKind::kPodKill,    FaultKind::kPodFailure,   FaultKind::kIoErrno,
    FaultKind::kIoThrottle, FaultKind::kDiskFill,
};

// The kind's name in the API, metrics labels and logs ("cpu_stress").
std::string_view kind_name(FaultKind kind);
bool is_network_kind(FaultKind kind);

// What delays a netem fault's packets (NetemFault.engine).
enum class NetemEngine { kAuto, kNetem, kEbpf };
std::string_view engine_name(NetemEngine engine);  // "auto", "netem", "ebpf"

// A validated network fault: where it applies and, for shaping kinds, the
// leaf qdisc per direction (split for DIRECTION_BOTH where the spec asks).
struct NetworkFault {
  FaultKind kind = FaultKind::kPartition;
  net::Path path;
  std::optional<net::LeafSpec> egress;
  std::optional<net::LeafSpec> ingress;
  // netem faults: the engine the client asked for; validate_apply() leaves
  // `engine` at the request, resolve_engine() (agent/core/spec_engine.h)
  // decides auto against the node's capabilities and fills the rest.
  NetemEngine engine = NetemEngine::kNetem;
  std::string engine_reason;
  // Set when engine == kEbpf: the delay line that replaces the netem leaf.
  std::optional<delay::DelayLineSpec> delay_line;
};

// Faults on the pod's processes, cgroups and files (everything that is not a
// network fault). Sizes that depend on the pod's limits (percent of the memory
// limit, of the free space) are resolved by the backend against the pod.
struct CpuStress {
  double load = 0;       // percent of the CPU limit, (0, 100]
  uint32_t workers = 0;  // 0: one per CPU of the limit, rounded up
};
struct MemoryStress {
  uint64_t bytes = 0;  // exactly one of bytes and percent is set
  double percent = 0;  // of the container's memory limit, (0, 100]
};
// container_kill, pod_kill and pod_failure carry no parameters.
struct ProcessFault {};

enum IoOperationBit : uint32_t { kIoOpen = 1u << 0, kIoRead = 1u << 1, kIoWrite = 1u << 2 };
inline constexpr uint32_t kIoAllOperations = kIoOpen | kIoRead | kIoWrite;

struct IoErrno {
  std::string path;                        // absolute, normalized, inside the container
  int error = 0;                           // positive errno value
  std::string error_name;                  // "EIO"
  double percent = 100;                    // (0, 100]
  uint32_t operations = kIoAllOperations;  // IoOperationBit mask, never 0
};
struct IoThrottle {
  std::string path;  // absolute, normalized, inside the container
  uint64_t read_bps = 0;
  uint64_t write_bps = 0;
  uint64_t read_iops = 0;
  uint64_t write_iops = 0;
};
struct DiskFill {
  std::string path;    // absolute, normalized directory inside the container
  uint64_t bytes = 0;  // exactly one of bytes and percent is set
  double percent = 0;  // of the free space, (0, 100]
};

struct WorkloadFault {
  FaultKind kind = FaultKind::kCpuStress;
  std::variant<CpuStress, MemoryStress, ProcessFault, IoErrno, IoThrottle, DiskFill> params;
};

using Fault = std::variant<NetworkFault, WorkloadFault>;
FaultKind fault_kind(const Fault& fault);

struct Limits {
  std::chrono::nanoseconds max_ttl = std::chrono::hours(24);
  std::chrono::nanoseconds min_lease = std::chrono::seconds(1);
};

struct ValidatedApply {
  std::string id;
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;  // optional guard
  std::vector<std::string> containers;
  Fault fault;
  std::chrono::nanoseconds ttl{0};
  std::string lease_holder;  // "" = no lease
  std::chrono::nanoseconds lease_duration{0};
};

Result<ValidatedApply> validate_apply(const nodequake::v1::ApplyRequest& request,
                                      const Limits& limits);

// Kernel capabilities (names of agent/caps/probe.h) a fault needs, each with
// what it is needed for ("netem fault"). Needs that depend on the pod (its
// cgroup version) are checked by the backend.
std::vector<std::pair<std::string, std::string>> required_capabilities(const NetworkFault& fault);
std::vector<std::pair<std::string, std::string>> required_capabilities(const Fault& fault);

// Validation of the workload fault kinds (agent/core/workload_spec.cpp).
Result<WorkloadFault> validate_workload_spec(const nodequake::v1::FaultSpec& spec);

// An absolute path inside a container: no "..", no empty or "." components
// collapsed silently, no NUL; returned normalized ("/data//x/" -> "/data/x").
Result<std::string> validate_container_path(std::string_view path, std::string_view field);

// Errno by name ("EIO") or number ("5"); INVALID_ARGUMENT naming the field
// for anything else.
Result<std::pair<int, std::string>> parse_errno(std::string_view value, std::string_view field);

// Injection ids: 1..128 characters of [A-Za-z0-9._:/-].
Status validate_id(std::string_view id, std::string_view field);

}  // namespace nq::core
