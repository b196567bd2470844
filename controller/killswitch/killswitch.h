// The controller's kill switch: engaging persists "engaged" first (so a
// controller restarted mid-way stays engaged and refuses experiments), then
// has every agent revert everything and refuse new injections (RevertAll);
// releasing lifts it on every agent (Release) and then persists "released".
// Each answer carries the per-agent outcome.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "controller/audit/audit.h"
#include "controller/fanout/fanout.h"

namespace nq::killswitch {

struct State {
  bool engaged = false;
  std::string actor;   // who engaged (or released) it
  std::string reason;  // why it was engaged
  std::chrono::system_clock::time_point since{};
};

nlohmann::json to_json(const State& state);
Result<State> state_from_json(const nlohmann::json& j);
// A missing file is the released state.
Result<State> load_state(const std::filesystem::path& file);
// Atomically: a temporary file, fsync, rename over `file`, fsync of the directory.
Status save_state(const std::filesystem::path& file, const State& state);

// Reaches the agents; the kill switch's only dependency on them.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::vector<fanout::AgentOutcome> engage(const std::string& actor,
                                                   const std::string& reason) = 0;
  virtual std::vector<fanout::AgentOutcome> release(const std::string& actor) = 0;
};

// RevertAll/Release through the fan-out on the agents `agents()` names now
// (re-discovered each time: an agent that joined since the last experiment
// must be stopped too). A discovery failure is reported as the outcome of a
// pseudo-agent "discovery".
class FanOutBackend final : public Backend {
 public:
  FanOutBackend(fanout::FanOut& fanout, std::function<Result<std::vector<std::string>>()> agents)
      : fanout_(fanout), agents_(std::move(agents)) {}
  std::vector<fanout::AgentOutcome> engage(const std::string& actor,
                                           const std::string& reason) override;
  std::vector<fanout::AgentOutcome> release(const std::string& actor) override;

 private:
  fanout::FanOut& fanout_;
  std::function<Result<std::vector<std::string>>()> agents_;
};

struct Report {
  State state;
  std::vector<fanout::AgentOutcome> agents;
  std::chrono::milliseconds took{0};
  // Every agent answered and reverted everything.
  bool complete() const;
};

// {"engaged", "actor", "reason", "since", "complete", "took_ms",
//  "agents": [{"agent", "ok", "error", "reverted", "failures", "engaged", "took_ms"}]}
nlohmann::json to_json(const Report& report);

class KillSwitch {
 public:
  // Loads the persisted state. `audit` may be null.
  static Result<std::unique_ptr<KillSwitch>> open(std::filesystem::path state_file,
                                                  Backend& backend, audit::AuditLog* audit,
                                                  const Clock& clock);

  // Idempotent: engaging again re-sends RevertAll (an agent unreachable the
  // first time is reached now) and keeps the original actor and time.
  Result<Report> engage(const std::string& actor, const std::string& reason);
  Result<Report> release(const std::string& actor);

  State status() const;
  bool engaged() const { return status().engaged; }

 private:
  KillSwitch(std::filesystem::path file, Backend& backend, audit::AuditLog* audit,
             const Clock& clock, State state)
      : file_(std::move(file)), backend_(backend), audit_(audit), clock_(clock), state_(state) {}
  void audit(audit::Action action, const std::string& actor, const Report& report);
  void set_state(State state);

  std::filesystem::path file_;
  Backend& backend_;
  audit::AuditLog* audit_;
  const Clock& clock_;
  std::mutex op_mu_;  // one engage/release at a time
  mutable std::mutex state_mu_;
  State state_;
};

}  // namespace nq::killswitch
