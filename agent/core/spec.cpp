#include "agent/core/spec.h"

#include <google/protobuf/util/time_util.h>

#include "common/duration.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;
using google::protobuf::util::TimeUtil;

bool is_dns_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// Kubernetes namespace and pod names: DNS-1123 subdomains (lowercase
// alphanumerics, '-' and '.'), at most 253 characters.
Status validate_k8s_name(const std::string& value, const std::string& field) {
  if (value.empty()) return Error::invalid_argument(field, "required");
  if (value.size() > 253) return Error::invalid_argument(field, "longer than 253 characters");
  for (char c : value) {
    if (!is_dns_label_char(c) && c != '.')
      return Error::invalid_argument(field, "\"" + value + "\" is not a valid Kubernetes name");
  }
  return ok();
}

Result<std::chrono::nanoseconds> duration_field(const google::protobuf::Duration& d,
                                                const std::string& field) {
  if (d.seconds() < 0 || d.nanos() < 0) return Error::invalid_argument(field, "negative");
  return std::chrono::nanoseconds(TimeUtil::DurationToNanoseconds(d));
}

Result<NetworkFault> shaping(FaultKind kind, Result<net::ShapingPlan> plan) {
  if (!plan.ok()) return std::move(plan).error();
  NetworkFault f;
  f.kind = kind;
  f.path = plan->path;
  f.egress = plan->egress;
  f.ingress = plan->ingress;
  return f;
}

template <class T>
Result<Fault> as_fault(Result<T> r) {
  if (!r.ok()) return std::move(r).error();
  return Fault(std::move(*r));
}

Result<Fault> validate_spec(const v1::FaultSpec& spec) {
  switch (spec.kind_case()) {
    case v1::FaultSpec::kNetem: {
      NQ_ASSIGN_OR_RETURN(NetworkFault f,
                          shaping(FaultKind::kNetem, net::plan_netem(spec.netem(), "spec.netem")));
      switch (spec.netem().engine()) {
        case v1::NETEM_ENGINE_AUTO:
          f.engine = NetemEngine::kAuto;
          break;
        case v1::NETEM_ENGINE_NETEM:
          f.engine = NetemEngine::kNetem;
          break;
        case v1::NETEM_ENGINE_EBPF:
          f.engine = NetemEngine::kEbpf;
          break;
        default:
          // proto3 enums are open: a newer client's engine arrives as a number.
          return Error::invalid_argument(
              "spec.netem.engine",
              std::to_string(spec.netem().engine()) + " is not auto, netem or ebpf");
      }
      return Fault(std::move(f));
    }
    case v1::FaultSpec::kBandwidth:
      return as_fault(
          shaping(FaultKind::kBandwidth, net::plan_bandwidth(spec.bandwidth(), "spec.bandwidth")));
    case v1::FaultSpec::kPartition: {
      NQ_ASSIGN_OR_RETURN(net::Path path,
                          net::path_from_proto(spec.partition().path(), "spec.partition.path"));
      NetworkFault f;
      f.kind = FaultKind::kPartition;
      f.path = std::move(path);
      return Fault(std::move(f));
    }
    case v1::FaultSpec::kCpuStress:
    case v1::FaultSpec::kMemoryStress:
    case v1::FaultSpec::kContainerKill:
    case v1::FaultSpec::kPodKill:
    case v1::FaultSpec::kPodFailure:
    case v1::FaultSpec::kIoErrno:
    case v1::FaultSpec::kIoThrottle:
    case v1::FaultSpec::kDiskFill:
      return as_fault(validate_workload_spec(spec));
    case v1::FaultSpec::KIND_NOT_SET:
      break;
  }
  std::string known;
  for (FaultKind k : kAllFaultKinds)
    known += (known.empty() ? "" : ", ") + std::string(kind_name(k));
  // A newer client's fault kind arrives as an unknown field of FaultSpec.
  const auto& unknown = spec.GetReflection()->GetUnknownFields(spec);
  if (unknown.field_count() > 0)
    return Error::invalid_argument("spec", "unknown fault kind (field " +
                                               std::to_string(unknown.field(0).number()) +
                                               "); this agent knows " + known);
  return Error::invalid_argument("spec", "no fault kind set (one of " + known + ")");
}

}  // namespace

std::string_view kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kNetem:
      return "netem";
    case FaultKind::kBandwidth:
      return "bandwidth";
    case FaultKind::kPartition:
      return "partition";
    case FaultKind::kCpuStress:
      return "cpu_stress";
    case FaultKind::kMemoryStress:
      return "memory_stress";
    case FaultKind::kContainerKill:
      return "container_kill";
    case FaultKind::kPodKill:
      return "pod_kill";
    case FaultKind::kPodFailure:
      return "pod_failure";
    case FaultKind::kIoErrno:
      return "io_errno";
    case FaultKind::kIoThrottle:
      return "io_throttle";
    case FaultKind::kDiskFill:
      return "disk_fill";
  }
  return "unknown";
}

std::string_view engine_name(NetemEngine engine) {
  switch (engine) {
    case NetemEngine::kAuto:
      return "auto";
    case NetemEngine::kNetem:
      return "netem";
    case NetemEngine::kEbpf:
      return "ebpf";
  }
  return "unknown";
}

bool is_network_kind(FaultKind kind) {
  return kind == FaultKind::kNetem || kind == FaultKind::kBandwidth ||
         kind == FaultKind::kPartition;
}

FaultKind fault_kind(const Fault& fault) {
  return std::visit([](const auto& f) { return f.kind; }, fault);
}

Status validate_id(std::string_view id, std::string_view field) {
  if (id.empty()) return Error::invalid_argument(field, "required");
  if (id.size() > 128) return Error::invalid_argument(field, "longer than 128 characters");
  for (char c : id) {
    const bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == ':' || c == '/' || c == '-';
    if (!okc)
      return Error::invalid_argument(
          field, "\"" + std::string(id) + "\" has characters outside [A-Za-z0-9._:/-]");
  }
  return ok();
}

Result<ValidatedApply> validate_apply(const v1::ApplyRequest& request, const Limits& limits) {
  ValidatedApply v;
  NQ_TRY(validate_id(request.id(), "id"));
  v.id = request.id();

  const auto& pod = request.target().pod();
  NQ_TRY(validate_k8s_name(pod.namespace_(), "target.pod.namespace"));
  NQ_TRY(validate_k8s_name(pod.name(), "target.pod.name"));
  v.pod_namespace = pod.namespace_();
  v.pod_name = pod.name();
  v.pod_uid = pod.uid();
  for (int i = 0; i < request.target().containers_size(); ++i) {
    const std::string& c = request.target().containers(i);
    NQ_TRY(validate_k8s_name(c, "target.containers[" + std::to_string(i) + "]"));
    v.containers.push_back(c);
  }

  NQ_ASSIGN_OR_RETURN(v.fault, validate_spec(request.spec()));

  if (!request.has_ttl())
    return Error::invalid_argument("ttl", "required (the agent's hard limit)");
  NQ_ASSIGN_OR_RETURN(v.ttl, duration_field(request.ttl(), "ttl"));
  if (v.ttl <= std::chrono::nanoseconds(0))
    return Error::invalid_argument("ttl", "must be positive");
  if (v.ttl > limits.max_ttl)
    return Error::invalid_argument("ttl", format_duration(v.ttl) +
                                              " exceeds this agent's maximum " +
                                              format_duration(limits.max_ttl));

  if (request.has_lease()) {
    const auto& lease = request.lease();
    if (lease.holder().empty())
      return Error::invalid_argument("lease.holder", "required with a lease");
    NQ_TRY(validate_id(lease.holder(), "lease.holder"));
    NQ_ASSIGN_OR_RETURN(v.lease_duration, duration_field(lease.duration(), "lease.duration"));
    if (v.lease_duration < limits.min_lease)
      return Error::invalid_argument("lease.duration", format_duration(v.lease_duration) +
                                                           " is shorter than " +
                                                           format_duration(limits.min_lease));
    v.lease_holder = lease.holder();
  }
  return v;
}

std::vector<std::pair<std::string, std::string>> required_capabilities(const NetworkFault& fault) {
  std::vector<std::pair<std::string, std::string>> caps;
  const std::string what = std::string(kind_name(fault.kind)) + " fault";
  // Every network fault classifies or drops packets with a sched_cls program.
  caps.emplace_back("bpf_prog_sched_cls", what);
  if (fault.kind == FaultKind::kNetem && fault.engine == NetemEngine::kEbpf) {
    // The delay line: TCX links (a tc filter would outlive the agent and
    // black-hole traffic into a TAP that is gone) and a TAP.
    const std::string line = what + " with engine ebpf (the delay line)";
    caps.emplace_back("bpf_tcx", line);
    caps.emplace_back("tun", line);
    return caps;
  }
  auto leaf_cap = [&](const net::LeafSpec& leaf) {
    caps.emplace_back(std::holds_alternative<net::NetemParams>(leaf) ? "sch_netem" : "sch_tbf",
                      what);
  };
  if (fault.egress || fault.ingress) caps.emplace_back("sch_htb", what);
  if (fault.egress) leaf_cap(*fault.egress);
  if (fault.ingress) {
    leaf_cap(*fault.ingress);
    caps.emplace_back("ifb", what + " on ingress");
  }
  return caps;
}

std::vector<std::pair<std::string, std::string>> required_capabilities(const Fault& fault) {
  if (const auto* net = std::get_if<NetworkFault>(&fault)) return required_capabilities(*net);
  const auto& w = std::get<WorkloadFault>(fault);
  if (w.kind == FaultKind::kIoErrno) return {{"bpf_lsm", "io_errno fault"}};
  return {};
}

}  // namespace nq::core
