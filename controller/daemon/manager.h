// Every experiment this controller runs: submit (parse, admission, a run on a
// thread of its own), status, abort, reports, and stopping them all (kill
// switch, shutdown). With a store (RunDeps::store) the experiments of earlier
// incarnations are listed too (recover()). The kill switch reaches the manager through
// KillSwitchBackend, which stops the runs before the agents revert everything.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/daemon/run.h"
#include "controller/killswitch/killswitch.h"

namespace nq::controller {

class ExperimentManager {
 public:
  ExperimentManager(RunDeps deps, RunOptions options);
  // shutdown().
  ~ExperimentManager();
  ExperimentManager(const ExperimentManager&) = delete;
  ExperimentManager& operator=(const ExperimentManager&) = delete;

  struct Recovered {
    size_t loaded = 0;                  // records of earlier runs
    size_t interrupted = 0;             // of those, live when the controller died
    size_t reverted = 0;                // Revert calls answered OK or NOT_FOUND
    std::vector<std::string> failures;  // Revert calls that failed: "<agent> <id>: <why>"
    std::vector<Error> problems;        // records that could not be read
  };
  // Call once, before serving: loads the records of earlier runs, marks the
  // ones that were live Interrupted (and saves them), and sends Revert for
  // every injection a record still lists to its agent and to every agent
  // discovered now (an agent may have moved; NOT_FOUND counts as done).
  Recovered recover();

  // OK, or why no experiment may start now (the kill switch).
  void set_admission(std::function<Status()> admission) { admission_ = std::move(admission); }

  // Parses `yaml`, picks `document` (pick_document()), checks it can run
  // here, audits the submission and starts it. seed 0: a random one. The
  // error of an invalid file names file, line and field.
  Result<v1::ExperimentStatus> submit(const std::string& yaml, const std::string& file,
                                      const std::string& document, uint64_t seed, bool force,
                                      const std::string& actor);
  Result<v1::ExperimentStatus> get(const std::string& id) const;
  std::vector<v1::ExperimentStatus> list() const;
  Result<v1::ExperimentStatus> abort(const std::string& id, const std::string& actor,
                                     const std::string& reason);
  Result<std::pair<nlohmann::json, std::string>> report(const std::string& id) const;

  // Stops every running experiment (they revert on their own threads).
  void stop_all(StopReason reason, const std::string& actor, const std::string& message);
  // Waits until every run has ended (reverted). For tests and shutdown.
  void wait_all();
  // stop_all(kShutdown) and wait_all(); refuses new submissions. Idempotent.
  void shutdown();

 private:
  RunDeps deps_;
  RunOptions options_;
  std::function<Status()> admission_;
  mutable std::mutex mu_;
  bool shutting_down_ = false;
  std::map<std::string, std::shared_ptr<Run>> runs_;
  // Experiments of earlier incarnations (recover()), read-only.
  std::map<std::string, v1::ExperimentStatus> past_;

  Result<std::pair<nlohmann::json, std::string>> stored_report(const std::string& id) const;
  std::vector<std::thread> threads_;
};

// The kill switch's backend in the daemon: engaging first stops every
// running experiment (status Reverted) and then has every agent revert
// everything; the metrics follow the state.
class KillSwitchBackend final : public killswitch::Backend {
 public:
  KillSwitchBackend(ExperimentManager& manager, killswitch::Backend& agents,
                    ControllerMetrics* metrics)
      : manager_(manager), agents_(agents), metrics_(metrics) {}
  std::vector<fanout::AgentOutcome> engage(const std::string& actor,
                                           const std::string& reason) override;
  std::vector<fanout::AgentOutcome> release(const std::string& actor) override;

 private:
  ExperimentManager& manager_;
  killswitch::Backend& agents_;
  ControllerMetrics* metrics_;
};

// The document of a file to run: the only one when `document` is "", else
// the one whose metadata.name (or namespace/name) it is. The errors list the
// names the file holds.
Result<experiment::Document> pick_document(std::vector<experiment::Document> docs,
                                           const std::string& document, const std::string& file);

// "<name>-<8 hex>": a valid experiment uid (fanout/ids.h) from the file's name.
std::string new_experiment_id(const std::string& name);

}  // namespace nq::controller
