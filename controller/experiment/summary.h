// One-line human summaries of parsed documents (`nqctl validate`, logs).
#pragma once

#include <string>

#include "controller/experiment/model.h"
#include "controller/experiment/workflow_plan.h"

namespace nq::experiment {

// "NetworkChaos llm-marketplace/network-latency: delay 500ms ±100ms (25%) to
//  1 target pod (one); mode one in [llm-marketplace] app=graphql-gateway; 5m; 1 abort rule"
std::string summarize(const Experiment& exp);
// "Workflow chaos-testing/comprehensive: 7 phases, 9 steps (4 chaos, 2 SLO
//  checks, ...), about 21m; 2 abort rules"
std::string summarize(const Workflow& wf, const Plan& plan);

}  // namespace nq::experiment
