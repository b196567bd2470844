// The per-phase part of a run's report: for every phase of a workflow (and the
// one "phase" of a plain experiment) when it ran, its steps with their lanes
// and outcomes, and the run's SLOs before, during and after it, with the time
// they took to come back within bounds after its faults were reverted.
//
// Pure data and JSON/table rendering; the run (run.h) fills the records.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/experiment/model.h"
#include "controller/experiment/workflow_plan.h"
#include "controller/prom/slo.h"

namespace nq::controller {

using WallTime = std::chrono::system_clock::time_point;

struct StepRecord {
  std::string name;
  std::string type;  // NetworkChaos, ..., Suspend, SLOCheck, Report
  size_t phase = 0;  // index into the run's phases
  size_t lane = 0;
  std::optional<WallTime> started, ended;
  // "" (not run), "ok", "stopped" (the run was stopped meanwhile), or the
  // failure: "failed: <why>".
  std::string outcome;
  uint32_t injections = 0;
  // The run's SLOs just before this step's faults were reverted.
  std::optional<prom::SloPhase> during;
};

struct PhaseRecord {
  std::vector<std::vector<std::string>> lanes;  // step names, per lane
  bool injects = false;                         // has a chaos step
  std::optional<WallTime> started, ended;
  std::optional<prom::SloPhase> before, during, after;
  // From the end of the phase (its faults reverted) until the SLOs were back
  // within bounds; only for phases that inject.
  std::optional<prom::Recovery> recovery;
};

// The SLOs a workflow is measured by: the checks of its SLOCheck steps (one
// per name, first wins); without any, its abort rules negated.
std::vector<prom::SloCheck> workflow_slos(const experiment::Workflow& wf);
// The abort rules' complement: `error > 0.05` aborts, so `error <= 0.05` is
// the bound the run is measured by.
std::vector<prom::SloCheck> checks_from_rules(const std::vector<prom::AbortRule>& rules);

// One record per phase of `plan` and one per step, in plan order (a template
// used twice gets two step records).
void plan_records(const experiment::Workflow& wf, const experiment::Plan& plan,
                  std::vector<PhaseRecord>& phases, std::vector<StepRecord>& steps);

std::string format_wall_time(WallTime t);

// {"phase": 1, "name": "a | b", "lanes": [...], "started_at", "ended_at",
//  "duration_ms", "steps": [...], "slo": {"before", "during", "after"},
//  "values": {"<slo>": {"bound", "before", "during", "after"}},
//  "recovery": {"recovered", "duration_ms", "polls"}}
nlohmann::json phase_json(size_t index, const PhaseRecord& phase,
                          const std::vector<StepRecord>& steps);
// PHASE / SLO / BOUND / BEFORE / DURING / AFTER / RECOVERY, one row per phase
// and SLO; "" when no phase has SLO values.
std::string phases_table(const std::vector<PhaseRecord>& phases);

// The value of SLO `name` in `phase`, if measured.
std::optional<double> slo_value(const std::optional<prom::SloPhase>& phase,
                                const std::string& name);

}  // namespace nq::controller
