// Which engine delays a netem fault's packets: sch_netem or the eBPF delay
// line (docs/delay-line.md). A pure function of what the client asked for
// (NetemFault.engine), the node's capabilities and the spec, so that the
// choice and its refusals are unit-tested without a kernel.
#pragma once

#include <string>

#include "agent/caps/probe.h"
#include "agent/core/spec.h"
#include "common/result.h"

namespace nq::core {

// What each engine needs from the kernel, and why it is missing.
struct EngineAvailability {
  bool netem = false;  // sch_netem and sch_htb
  std::string netem_detail;
  bool ebpf = false;  // bpf_tcx, tun and sched_cls programs
  std::string ebpf_detail;
};
EngineAvailability engine_availability(const Capabilities& caps);

struct EngineChoice {
  NetemEngine engine = NetemEngine::kNetem;
  std::string reason;  // for humans: "kernel lacks sch_netem"
};

// The engine `engine: auto` gives on this node (Probe): "netem", "ebpf", or
// "" when neither can run; with the reason.
struct NodeEngine {
  std::string name;
  std::string reason;
};
NodeEngine node_engine(const EngineAvailability& avail);

// The engine for `fault` (a validated netem fault; fault.engine is what the
// client asked for). Errors are FAILED_PRECONDITION naming the missing
// kernel feature, or the spec field the delay line cannot do and the engine.
Result<EngineChoice> choose_engine(const NetworkFault& fault, const EngineAvailability& avail);

// choose_engine(), then records the choice in `fault`: engine, reason and,
// for ebpf, the delay line's spec (validated with plan_delay_line). Faults
// of other kinds are left alone.
Status resolve_engine(NetworkFault& fault, const EngineAvailability& avail);

}  // namespace nq::core
