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
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/audit/audit.h"
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

// Why a run was stopped before its end.
enum class StopReason { kNone, kRule, kOperator, kKillSwitch, kShutdown, kFailure };
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
// The abort rules' complement as SLO checks: a run's own bounds, used for the
// pre/post checks and the recovery time of an experiment without SLOCheck steps.
std::vector<prom::SloCheck> checks_from_rules(const std::vector<prom::AbortRule>& rules);

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
  Status run_step(const experiment::Workflow& wf, size_t index);
  // Selects, applies, waits `duration` (or until stopped) and reverts.
  Status run_chaos(const experiment::Experiment& exp, const std::string& step,
                   std::optional<nanoseconds> duration);
  Status run_slo_step(const experiment::Template& t);
  Status write_report(const std::string& path);
  void guard_loop(const std::vector<prom::AbortRule>& rules);
  void revert(const std::string& step);
  void finish(Status result);

  // Waits up to `d`; false when the run was stopped meanwhile.
  bool sleep_for(nanoseconds d);
  bool stopping() const;
  void set_phase(std::string phase);
  void audit(audit::Action action, const std::string& actor, nlohmann::json details);
  nlohmann::json report_json() const;  // needs mu_

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
  prom::SloReport slo_report_;
  bool has_report_ = false;
  bool finished_ = false;
  bool guard_done_ = false;  // the abort-rule guard thread should end
  // The kill switch or a shutdown: even a run already stopping (after an abort
  // rule) skips its recovery polling.
  std::atomic<bool> hard_stop_{false};
};

}  // namespace nq::controller
