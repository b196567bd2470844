// A workflow's tree of Serial and Parallel templates flattened into the order
// the controller runs it: phases one after the other; within a phase, lanes
// side by side; within a lane, steps one after the other.
//
//   Serial[a, Parallel[b, Serial[c, d]], e]  ->  [a] ; [b | c, d] ; [e]
//
// Serial children of Serial merge into the outer sequence and Parallel
// children of Parallel into the outer phase. A Parallel inside a Serial that is
// itself a lane of a Parallel has no phase form and is refused.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "common/result.h"
#include "controller/experiment/diagnostics.h"
#include "controller/experiment/model.h"

namespace nq::experiment {

struct Lane {
  std::vector<size_t> steps;  // indexes into Workflow::templates, all leaves
};

struct Phase {
  std::vector<Lane> lanes;
};

struct Plan {
  std::vector<Phase> phases;
};

// Checks references (unknown children, cycles, unreachable templates) and
// nesting; problems go to `diag` with the template's line.
std::optional<Plan> plan_workflow(const Workflow& wf, Diagnostics& diag);
Result<Plan> plan_workflow(const Workflow& wf);

// How long a leaf runs at most: chaos and suspend their deadline, an SLO
// check its `within`, a report nothing.
std::chrono::nanoseconds step_duration(const Template& t);
// Sum over phases of the longest lane.
std::chrono::nanoseconds estimated_duration(const Workflow& wf, const Plan& plan);

}  // namespace nq::experiment
