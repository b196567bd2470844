// Parallel calls from the controller to every agent, each with its own
// deadline, so one slow or dead node costs at most that deadline and never
// the sum: selection (ListTargets), all-or-nothing injection (Apply with
// rollback), revert, lease renewal and the kill switch (RevertAll/Release).
//
// Calls use gRPC's callback API: no thread per agent; the calling thread
// waits until every call has completed, which each deadline bounds.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "controller/fanout/pool.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::fanout {

namespace v1 = nodequake::v1;
using std::chrono::milliseconds;

struct FanOutOptions {
  milliseconds list_deadline{5000};
  milliseconds apply_deadline{10000};
  milliseconds revert_deadline{10000};
  milliseconds renew_deadline{2000};
  // Kill switch: short, so that RevertAll across all agents answers within a
  // second even when an agent does not (the agents' own RevertAll is fast).
  milliseconds killswitch_deadline{800};
};

// ------------------------------------------------------------ selection

struct NodeTargets {
  std::string agent;  // gRPC target
  std::string node;   // the agent's node name
  std::vector<v1::Pod> pods;
};
struct AgentError {
  std::string agent;
  Error error;
};
struct TargetsResult {
  std::vector<NodeTargets> nodes;  // in agent order, agents that answered
  std::vector<AgentError> errors;  // agents that did not
};

// ------------------------------------------------------------ injection

struct PlannedInjection {
  std::string agent;  // gRPC target of the agent on the pod's node
  // id may be empty (derived from the experiment uid, the pod and `step`);
  // ttl is required; the lease is set by apply().
  v1::ApplyRequest request;
  std::string step;  // distinguishes several faults of one experiment on one pod
};

struct InjectionRef {
  std::string agent;
  std::string id;
  v1::PodRef pod;
};

struct InjectionOutcome {
  InjectionRef ref;
  std::optional<Error> error;  // none: applied (or reverted)
  // The agent may or may not have acted (deadline exceeded, connection lost).
  bool outcome_unknown = false;
  v1::Injection injection;  // the agent's answer when it succeeded
  milliseconds took{0};
};

struct ApplyOptions {
  std::string experiment_uid;
  // Every injection carries a lease "controller/<uid>" of this length; the
  // LeaseRenewer renews it every lease/3 while the experiment runs.
  std::chrono::seconds lease{30};
  // Revert everything of the plan when any injection fails.
  bool all_or_nothing = true;
};

struct ApplyReport {
  std::vector<InjectionOutcome> injections;  // one per planned injection, plan order
  std::vector<InjectionOutcome> rollback;    // reverts done because of a failure
  bool rolled_back = false;
  // The first failure, naming agent, pod and cause, plus the rollback's
  // outcome; none when everything was applied.
  std::optional<Error> error;
  std::vector<InjectionRef> applied() const;
};

// ------------------------------------------------------------ kill switch, leases

struct AgentOutcome {
  std::string agent;
  std::optional<Error> error;
  uint32_t count = 0;                 // injections reverted (RevertAll) or renewed (RenewLease)
  std::vector<std::string> failures;  // "<id>: <error>" the agent could not revert
  v1::KillSwitchStatus killswitch;    // the agent's state after the call
  milliseconds took{0};
};

class FanOut {
 public:
  FanOut(AgentPool& pool, FanOutOptions options) : pool_(pool), options_(options) {}

  const FanOutOptions& options() const { return options_; }

  // Phase one of selection on every agent.
  TargetsResult list_targets(const std::vector<std::string>& agents,
                             const v1::ListTargetsRequest& request);

  // Fills ids and leases, applies everything in parallel, and on a failure
  // (all_or_nothing) reverts every injection that may exist: the applied ones
  // and those whose outcome is unknown (Apply is idempotent on the id and a
  // Revert of an id the agent never saw is NOT_FOUND, which counts as done).
  // A malformed plan is refused before any call, as the report's error.
  ApplyReport apply(std::vector<PlannedInjection> plan, const ApplyOptions& options);

  // Reverts injections in parallel; NOT_FOUND counts as reverted.
  std::vector<InjectionOutcome> revert(const std::vector<InjectionRef>& injections);

  std::vector<AgentOutcome> revert_all(const std::vector<std::string>& agents,
                                       const std::string& actor, const std::string& reason);
  std::vector<AgentOutcome> release(const std::vector<std::string>& agents,
                                    const std::string& actor);
  // RenewLease(holder) on every agent; duration 0 keeps each injection's own.
  std::vector<AgentOutcome> renew(const std::vector<std::string>& agents, const std::string& holder,
                                  std::chrono::nanoseconds duration);

 private:
  AgentPool& pool_;
  FanOutOptions options_;
};

// "a, b: <error>; c: <error>" for logs and error messages; "" when all succeeded.
std::string summarize_failures(const std::vector<AgentOutcome>& outcomes);

}  // namespace nq::fanout
