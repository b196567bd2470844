// Lowering: an experiment of the model becomes what the agents are asked —
// the selector for ListTargets (phase one of selection), the mode for the
// controller's choice (phase two), and the FaultSpecs to Apply on each chosen
// pod. Pure functions over a validated model; nothing here can fail except
// binding the chosen peers (scope_to_peers).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/experiment/model.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::experiment {

struct LoweredTarget {
  nodequake::v1::PodSelector selector;
  selection::ModeSpec mode;
};

struct Lowered {
  std::string name;  // "namespace/name" (or "name" without a namespace)
  Kind kind = Kind::kNetworkChaos;
  nodequake::v1::PodSelector selector;
  selection::ModeSpec mode;
  // Network faults with a `target`: the peers whose pod IPs scope every fault,
  // chosen with their own mode; the faults' remote_cidrs are then completed
  // with scope_to_peers().
  std::optional<LoweredTarget> target;
  // Target.containers of every ApplyRequest (empty: every container).
  std::vector<std::string> containers;
  // Applied on every chosen pod; a StressChaos with cpu and memory gives two.
  std::vector<nodequake::v1::FaultSpec> faults;
  // The ApplyRequest TTL; absent for one-shot kills.
  std::optional<nanoseconds> duration;
  std::vector<AbortRule> abort_when;
};

nodequake::v1::PodSelector lower_selector(const Selector& selector);
Lowered lower(const Experiment& exp);

// The faults with the chosen peers' IPs (each as a /32 or /128) added to
// every network fault's remote CIDRs. An empty remote scope means "every
// peer", so peers that yield no address at all are an error
// (FailedPrecondition), never a silently widened fault.
Result<std::vector<nodequake::v1::FaultSpec>> scope_to_peers(
    const std::vector<nodequake::v1::FaultSpec>& faults,
    const std::vector<nodequake::v1::Pod>& peers);

}  // namespace nq::experiment
