#include "controller/experiment/lower.h"

#include "common/cidr.h"

namespace nq::experiment {
namespace {

namespace v1 = nodequake::v1;

void set_duration(google::protobuf::Duration* out, nanoseconds d) {
  out->set_seconds(d.count() / 1000000000);
  out->set_nanos(static_cast<int32_t>(d.count() % 1000000000));
}

v1::Direction lower_direction(Direction d) {
  switch (d) {
    case Direction::kTo:
      return v1::DIRECTION_TO;
    case Direction::kFrom:
      return v1::DIRECTION_FROM;
    case Direction::kBoth:
      return v1::DIRECTION_BOTH;
  }
  return v1::DIRECTION_UNSPECIFIED;
}

v1::DelayDistribution lower_distribution(Distribution d) {
  switch (d) {
    case Distribution::kUniform:
      return v1::DELAY_DISTRIBUTION_UNIFORM;
    case Distribution::kNormal:
      return v1::DELAY_DISTRIBUTION_NORMAL;
    case Distribution::kPareto:
      return v1::DELAY_DISTRIBUTION_PARETO;
    case Distribution::kParetoNormal:
      return v1::DELAY_DISTRIBUTION_PARETONORMAL;
  }
  return v1::DELAY_DISTRIBUTION_UNIFORM;
}

v1::NetworkPath lower_path(const NetworkSpec& net) {
  v1::NetworkPath path;
  path.set_direction(lower_direction(net.direction));
  for (const std::string& cidr : net.external_targets) path.mutable_scope()->add_remote_cidrs(cidr);
  if (!net.device.empty()) path.set_interface(net.device);
  return path;
}

void lower_network(const NetworkSpec& net, Lowered& out) {
  v1::FaultSpec spec;
  switch (net.action) {
    case NetworkAction::kPartition:
      *spec.mutable_partition()->mutable_path() = lower_path(net);
      break;
    case NetworkAction::kBandwidth: {
      v1::BandwidthFault* bw = spec.mutable_bandwidth();
      *bw->mutable_path() = lower_path(net);
      bw->set_rate_bps(net.bandwidth->rate_bps);
      bw->set_buffer_bytes(net.bandwidth->buffer_bytes);
      bw->set_limit_bytes(net.bandwidth->limit_bytes);
      break;
    }
    default: {
      // delay, loss, duplicate, corrupt and netem are one netem qdisc: the
      // parser allowed only the blocks the action uses.
      v1::NetemFault* n = spec.mutable_netem();
      *n->mutable_path() = lower_path(net);
      switch (net.engine) {
        case NetemEngine::kAuto:
          n->set_engine(v1::NETEM_ENGINE_AUTO);
          break;
        case NetemEngine::kNetem:
          n->set_engine(v1::NETEM_ENGINE_NETEM);
          break;
        case NetemEngine::kEbpf:
          n->set_engine(v1::NETEM_ENGINE_EBPF);
          break;
      }
      if (net.delay) {
        set_duration(n->mutable_delay(), net.delay->latency);
        if (net.delay->jitter.count() > 0) set_duration(n->mutable_jitter(), net.delay->jitter);
        n->set_delay_correlation(net.delay->correlation);
        n->set_distribution(lower_distribution(net.delay->distribution));
        if (net.delay->reorder) {
          n->set_reorder(net.delay->reorder->percent);
          n->set_reorder_correlation(net.delay->reorder->correlation);
          n->set_gap(net.delay->reorder->gap);
        }
        // Chaos Mesh delays every packet in each direction by the latency
        // (its tc rules sit on both sides); without this flag the agent
        // would split the delay so the round trip grows by it only once.
        n->set_delay_each_direction(net.direction == Direction::kBoth);
      }
      if (net.loss) {
        n->set_loss(net.loss->percent);
        n->set_loss_correlation(net.loss->correlation);
      }
      if (net.duplicate) {
        n->set_duplicate(net.duplicate->percent);
        n->set_duplicate_correlation(net.duplicate->correlation);
      }
      if (net.corrupt) {
        n->set_corrupt(net.corrupt->percent);
        n->set_corrupt_correlation(net.corrupt->correlation);
      }
      break;
    }
  }
  out.faults.push_back(std::move(spec));
  if (net.target)
    out.target = LoweredTarget{lower_selector(net.target->selector), net.target->mode};
}

void lower_stress(const StressSpec& st, Lowered& out) {
  if (st.cpu) {
    v1::FaultSpec spec;
    spec.mutable_cpu_stress()->set_load(st.cpu->load);
    spec.mutable_cpu_stress()->set_workers(st.cpu->workers);
    out.faults.push_back(std::move(spec));
  }
  if (st.memory) {
    // Chaos Mesh's size is per worker; the agent takes the total.
    v1::FaultSpec spec;
    if (st.memory->percent > 0)
      spec.mutable_memory_stress()->set_percent(st.memory->percent * st.memory->workers);
    else
      spec.mutable_memory_stress()->set_bytes(st.memory->bytes * st.memory->workers);
    out.faults.push_back(std::move(spec));
  }
  out.containers = st.containers;
}

void lower_io(const IoSpec& io, Lowered& out) {
  v1::FaultSpec spec;
  switch (io.action) {
    case IoAction::kFault: {
      v1::IoErrnoFault* f = spec.mutable_io_errno();
      f->set_path(io.effective_path());
      f->set_error(io.error);
      f->set_percent(io.percent);
      for (IoMethod m : io.methods) {
        f->add_operations(m == IoMethod::kOpen   ? v1::IO_OPERATION_OPEN
                          : m == IoMethod::kRead ? v1::IO_OPERATION_READ
                                                 : v1::IO_OPERATION_WRITE);
      }
      break;
    }
    case IoAction::kThrottle: {
      v1::IoThrottleFault* f = spec.mutable_io_throttle();
      f->set_path(io.effective_path());
      f->set_read_bytes_per_second(io.throttle.read_bytes_per_second);
      f->set_write_bytes_per_second(io.throttle.write_bytes_per_second);
      f->set_read_iops(io.throttle.read_iops);
      f->set_write_iops(io.throttle.write_iops);
      break;
    }
    case IoAction::kDiskFill: {
      v1::DiskFillFault* f = spec.mutable_disk_fill();
      f->set_path(io.effective_path());
      f->set_bytes(io.fill.bytes);
      f->set_percent(io.fill.percent);
      break;
    }
  }
  out.faults.push_back(std::move(spec));
  out.containers = io.containers;
}

void lower_pod(const PodSpec& pod, Lowered& out) {
  v1::FaultSpec spec;
  switch (pod.action) {
    case PodAction::kPodKill:
      spec.mutable_pod_kill();
      break;
    case PodAction::kContainerKill:
      spec.mutable_container_kill();
      out.containers = pod.containers;
      break;
    case PodAction::kPodFailure:
      spec.mutable_pod_failure();
      break;
  }
  out.faults.push_back(std::move(spec));
}

v1::NetworkPath* path_of(v1::FaultSpec& spec) {
  switch (spec.kind_case()) {
    case v1::FaultSpec::kNetem:
      return spec.mutable_netem()->mutable_path();
    case v1::FaultSpec::kBandwidth:
      return spec.mutable_bandwidth()->mutable_path();
    case v1::FaultSpec::kPartition:
      return spec.mutable_partition()->mutable_path();
    default:
      return nullptr;
  }
}

}  // namespace

v1::PodSelector lower_selector(const Selector& selector) {
  v1::PodSelector out;
  for (const std::string& ns : selector.namespaces) out.add_namespaces(ns);
  for (const auto& [k, v] : selector.labels) (*out.mutable_match_labels())[k] = v;
  for (const LabelRequirement& r : selector.expressions) {
    v1::LabelSelectorRequirement* req = out.add_match_expressions();
    req->set_key(r.key);
    req->set_operator_(r.op);
    for (const std::string& v : r.values) req->add_values(v);
  }
  return out;
}

Lowered lower(const Experiment& exp) {
  Lowered out;
  out.name = exp.namespace_.empty() ? exp.name : exp.namespace_ + "/" + exp.name;
  out.kind = exp.kind;
  out.selector = lower_selector(exp.selector);
  out.mode = exp.mode;
  out.duration = exp.duration;
  out.abort_when = exp.abort_when;
  std::visit(
      [&](const auto& spec) {
        using T = std::decay_t<decltype(spec)>;
        if constexpr (std::is_same_v<T, NetworkSpec>)
          lower_network(spec, out);
        else if constexpr (std::is_same_v<T, StressSpec>)
          lower_stress(spec, out);
        else if constexpr (std::is_same_v<T, IoSpec>)
          lower_io(spec, out);
        else
          lower_pod(spec, out);
      },
      exp.spec);
  return out;
}

Result<std::vector<v1::FaultSpec>> scope_to_peers(const std::vector<v1::FaultSpec>& faults,
                                                  const std::vector<v1::Pod>& peers) {
  std::vector<std::string> cidrs;
  for (const v1::Pod& pod : peers) {
    for (const std::string& ip : pod.ips()) {
      NQ_ASSIGN_OR_RETURN(Cidr c, parse_cidr(ip, "pod " + pod.ref().name() + " ip"));
      cidrs.push_back(c.str());
    }
  }
  if (cidrs.empty())
    return Error::failed_precondition(
        "target: the chosen peer pods have no IP address; refusing to widen the fault to every "
        "peer");
  std::vector<v1::FaultSpec> out = faults;
  for (v1::FaultSpec& spec : out) {
    v1::NetworkPath* path = path_of(spec);
    if (path == nullptr) continue;
    for (const std::string& c : cidrs) path->mutable_scope()->add_remote_cidrs(c);
  }
  return out;
}

}  // namespace nq::experiment
