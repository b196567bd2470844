// Names the controller gives what it creates on the agents. Deterministic, so
// that a retried Apply (after a timeout, or by a restarted controller) hits
// the agent's idempotency on the id instead of injecting twice.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::fanout {

// An experiment uid: 1..64 characters of [A-Za-z0-9._-] (a Kubernetes uid, a
// UUID, or a name plus a run number), so that the ids below stay within what
// the agent accepts ([A-Za-z0-9._:/-], at most 128).
Status validate_experiment_uid(std::string_view uid);

// "controller/<uid>": the lease holder of every injection of an experiment.
std::string lease_holder(std::string_view experiment_uid);

// "<uid>/<namespace>/<pod>" (plus "/<step>" when a workflow injects several
// faults into the same pod); when that exceeds the agent's 128 characters,
// "<uid>/h-<first 128 bits of SHA-256 over namespace, pod and step, hex>".
// `uid` must be valid; `step` is "" or [A-Za-z0-9._-]+.
Result<std::string> injection_id(std::string_view experiment_uid, const nodequake::v1::PodRef& pod,
                                 std::string_view step = "");

}  // namespace nq::fanout
