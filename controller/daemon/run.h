// One submitted experiment or workflow, run to the end on a thread of its
// own: selection (ListTargets on every agent, then select() with the run's
// seed), all-or-nothing Apply with a lease the LeaseRenewer keeps alive, the
// abort rules evaluated against Prometheus while it runs, revert, the SLO
// checks and recovery time, and a report. A workflow runs the phases of
// plan_workflow() in order, the lanes of a phase side by side.
//
// Whatever ends a run (its duration, an abort rule, an operator, a failure,
// the kill switch, the controller's shutdown) it reverts what it injected
// before execute() returns; if the controller dies instead, the leases run
// out on the agents.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/audit/audit.h"
#include "controller/daemon/report.h"
#include "controller/daemon/store.h"
#include "controller/experiment/model.h"
#include "controller/fanout/fanout.h"
#include "controller/fanout/renewer.h"
#include "controller/metrics/metrics.h"
#include "controller/prom/rules.h"
#include "controller/prom/slo.h"
#include "nodequake/v1/controller.pb.h"

namespace nq::controller {

namespace v1 = nodequake::v1;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// What a run talks to; all must outlive it. `prom`, `audit` and `metrics` may
// be null (no Prometheus configured: abort rules and SLO checks cannot be
// evaluated and such experiments are refused at submit).
struct RunDeps {
  fanout::FanOut* fanout = nullptr;
  std::function<Result<std::vector<std::string>>()> agents;
  fanout::LeaseRenewer* renewer = nullptr;
  prom::Querier* prom = nullptr;
  audit::AuditLog* audit = nullptr;
  ControllerMetrics* metrics = nullptr;
  // Where the run's record is kept across restarts; null: memory only.
  const ExperimentStore* store = nullptr;
};

struct RunOptions {
  std::chrono::seconds lease{30};
  milliseconds abort_interval{5000};
  selection::BlastRadius ceiling;
  prom::RecoveryOptions recovery{milliseconds(1000), milliseconds(std::chrono::minutes(5))};
  // Agent TTL beyond the fault's duration: the controller's revert is the
  // normal end; the TTL is the agent's own backstop.
  nanoseconds ttl_margin{std::chrono::seconds(10)};
  // TTL of one-shot kills (nothing to revert; the injection stays listed).
  nanoseconds one_shot_ttl{std::chrono::seconds(60)};
  std::filesystem::path report_dir;  // "" = reports are kept in memory only
};

// Why a run was stopped before its end. kSloCheck: a workflow's SLOCheck
// step found an SLO out of bounds (the run is Aborted, like by a rule).
enum class StopReason { kNone, kRule, kOperator, kKillSwitch, kShutdown, kFailure, kSloCheck };
std::string_view stop_reason_name(StopReason r) noexcept;

struct Submission {
  std::string id;
  std::string actor;
  uint64_t seed = 0;
  bool force = false;
};

std::string_view state_name(v1::ExperimentState s) noexcept;
// "NetworkChaos" ... "Workflow".
std::string document_kind(const experiment::Document& doc);
std::string document_name(const experiment::Document& doc);
// One line for `nqctl describe` and the record: experiment::summarize().
std::string document_summary(const experiment::Document& doc);

class Run {
 public:
  Run(Submission submission, experiment::Document doc, RunDeps deps, RunOptions options);
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  // Runs to the end; call once, on the run's own thread.
  void execute();
  // Asks the run to stop and revert (no-op once finished); returns at once.
  void stop(StopReason reason, const std::string& actor, const std::string& message);

  const std::string& id() const { return sub_.id; }
  v1::ExperimentStatus status() const;
  bool finished() const;
  // The report (JSON and table) once the run has one.
  std::optional<std::pair<nlohmann::json, std::string>> report() const;

 private:
  struct Applied {
    std::string step;
    std::vector<fanout::InjectionRef> refs;
  };

  Status run_experiment();
  Status run_workflow();
  Status run_step(const experiment::Workflow& wf, size_t index, size_t slot);
  // Selects, applies, waits `duration` (or until stopped) and reverts. `slot`:
  // the workflow step record (none for a plain experiment).
  Status run_chaos(const experiment::Experiment& exp, const std::string& step,
                   std::optional<nanoseconds> duration, std::optional<size_t> slot);
  Status run_slo_step(const experiment::Template& t);
  // The phase's SLOs after it: recovery polling for a phase that injected,
  // else one sample.
  void measure_after_phase(size_t phase);
  std::optional<prom::SloPhase> sample_slos(const std::string& label);
  Status write_report(const std::string& path);
  // Writes the record (status + possibly applied injections) to the store;
  // failures are logged unless `required`.
  Status persist(bool required = false);
  void guard_loop(const std::vector<prom::AbortRule>& rules);
  void revert(const std::string& step);
  void finish(Status result);

  // Waits up to `d`; false when the run was stopped meanwhile.
  bool sleep_for(nanoseconds d);
  bool stopping() const;
  void set_phase(std::string phase);
  void audit(audit::Action action, const std::string& actor, nlohmann::json details);
  nlohmann::json report_json() const;  // needs mu_
  std::string report_table() const;    // needs mu_

  const Submission sub_;
  const experiment::Document doc_;
  RunDeps deps_;
  const RunOptions opts_;
  const std::string kind_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  v1::ExperimentStatus status_;
  std::chrono::steady_clock::time_point started_{};
  nanoseconds estimate_{0};
  StopReason stop_ = StopReason::kNone;
  std::string stop_actor_, stop_message_;
  std::vector<Applied> applied_;
  // The SLOs the run is measured by (before/during/after every phase).
  std::vector<prom::SloCheck> slos_;
  std::vector<PhaseRecord> phases_;
  std::vector<StepRecord> steps_;
  std::optional<prom::SloPhase> during_;  // a plain experiment's
  // Injections that may exist on the agents, by step: recorded before their
  // Apply, dropped once reverted; persisted with the status.
  std::map<std::string, std::vector<fanout::InjectionRef>> journal_;
  std::vector<std::string> report_paths_;  // Report steps' files, rewritten at the end
  std::mutex persist_mu_;                  // one save of this run's record at a time, newest last
  prom::SloReport slo_report_;
  bool has_report_ = false;
  bool finished_ = false;
  bool guard_done_ = false;  // the abort-rule guard thread should end
  // The kill switch or a shutdown: even a run already stopping (after an abort
  // rule) skips its recovery polling.
  std::atomic<bool> hard_stop_{false};
};

}  // namespace nq::controller
