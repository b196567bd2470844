#include "agent/core/spec_engine.h"

namespace nq::core {
namespace {

constexpr const char* kField = "spec.netem";

std::string detail_of(const Capabilities& caps, const std::string& name) {
  for (const Capability& c : caps.all())
    if (c.name == name) return c.detail;
  return "not probed";
}

// All of `names`, or the first missing one with its detail.
bool all_of(const Capabilities& caps, std::initializer_list<const char*> names,
            std::string& detail) {
  for (const char* name : names) {
    if (!caps.has(name)) {
      detail = std::string("no ") + name + " (" + detail_of(caps, name) + ")";
      return false;
    }
  }
  return true;
}

// The delay line's form of the fault: FAILED_PRECONDITION naming the field it
// cannot do (reorder) and the engine. Each direction's leaf becomes that
// direction's half of the line, as each becomes a qdisc on the netem path.
Result<delay::DelayLineSpec> delay_line_spec(const NetworkFault& fault) {
  NQ_ASSIGN_OR_RETURN(
      delay::DelayLineSpec spec,
      delay::spec_from_netem_leaves(fault.egress, fault.ingress, fault.path, kField));
  NQ_TRY(delay::plan_delay_line(spec, kField));
  return spec;
}

}  // namespace

EngineAvailability engine_availability(const Capabilities& caps) {
  EngineAvailability a;
  a.netem = all_of(caps, {"sch_netem", "sch_htb"}, a.netem_detail);
  if (a.netem) a.netem_detail = "sch_netem and sch_htb";
  a.ebpf = all_of(caps, {"bpf_prog_sched_cls", "bpf_tcx", "tun"}, a.ebpf_detail);
  if (a.ebpf) a.ebpf_detail = "TCX links, a TAP and sched_cls programs";
  return a;
}

NodeEngine node_engine(const EngineAvailability& avail) {
  if (avail.netem) return {"netem", "kernel has sch_netem"};
  if (avail.ebpf) return {"ebpf", "kernel lacks sch_netem: " + avail.netem_detail};
  return {"", "kernel lacks sch_netem (" + avail.netem_detail +
                  ") and cannot run the eBPF delay line (" + avail.ebpf_detail + ")"};
}

Result<EngineChoice> choose_engine(const NetworkFault& fault, const EngineAvailability& avail) {
  switch (fault.engine) {
    case NetemEngine::kNetem:
      if (!avail.netem)
        return Error::failed_precondition(
            "netem fault with spec.netem.engine netem needs sch_netem, which this kernel "
            "lacks: " +
            avail.netem_detail + " (engine auto or ebpf uses the eBPF delay line)");
      return EngineChoice{NetemEngine::kNetem, "requested (spec.netem.engine: netem)"};
    case NetemEngine::kEbpf: {
      auto spec = delay_line_spec(fault);
      if (!spec.ok())
        return Error::status(spec.error().status_code(),
                             spec.error().message() + " (spec.netem.engine: ebpf)");
      if (!avail.ebpf)
        return Error::failed_precondition(
            "netem fault with spec.netem.engine ebpf needs the eBPF delay line, which this "
            "kernel cannot run: " +
            avail.ebpf_detail);
      return EngineChoice{NetemEngine::kEbpf, "requested (spec.netem.engine: ebpf)"};
    }
    case NetemEngine::kAuto:
      break;
  }
  if (avail.netem) return EngineChoice{NetemEngine::kNetem, "kernel has sch_netem"};
  if (!avail.ebpf)
    return Error::failed_precondition(
        "netem fault needs sch_netem, which this kernel lacks: " + avail.netem_detail +
        "; the eBPF delay line cannot run either: " + avail.ebpf_detail);
  if (auto spec = delay_line_spec(fault); !spec.ok())
    return Error::status(
        spec.error().status_code(),
        spec.error().message() +
            " (engine auto chose the eBPF delay line: this kernel lacks sch_netem)");
  return EngineChoice{NetemEngine::kEbpf, "kernel lacks sch_netem"};
}

Status resolve_engine(NetworkFault& fault, const EngineAvailability& avail) {
  if (fault.kind != FaultKind::kNetem) return ok();
  NQ_ASSIGN_OR_RETURN(EngineChoice choice, choose_engine(fault, avail));
  fault.engine = choice.engine;
  fault.engine_reason = std::move(choice.reason);
  if (choice.engine == NetemEngine::kEbpf) {
    NQ_ASSIGN_OR_RETURN(delay::DelayLineSpec spec, delay_line_spec(fault));
    fault.delay_line = std::move(spec);
  } else {
    fault.delay_line.reset();
  }
  return ok();
}

}  // namespace nq::core
