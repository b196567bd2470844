// nodequake's path: one Apply or Revert RPC to the agent over its Unix
// socket. Apply returns only once the injection is journaled (fsync) and the
// kernel state is in place, so the RPC's latency is the time to effect; the
// benchmark verifies that with EffectProbe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "bench/bench_sandbox.h"
#include "common/result.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq::bench {

// Partition of `target` from `remote_ip` (direction TO: the pod's packets to
// that address are dropped), like `iptables -A OUTPUT -d <ip>/32 -j DROP`.
nodequake::v1::ApplyRequest partition_request(const std::string& id, const BenchPod& target,
                                              const std::string& remote_ip,
                                              std::chrono::seconds ttl);
// Egress bandwidth limit of `target` (direction TO, every destination), like
// `tc qdisc add dev eth0 root tbf rate ...`.
nodequake::v1::ApplyRequest bandwidth_request(const std::string& id, const BenchPod& target,
                                              uint64_t rate_bps, std::chrono::seconds ttl);

// Time from just before the call until the response. An RPC error, or a
// response that does not say the injection was created and is active (or,
// for Revert, is reverted), is an error.
Result<std::chrono::nanoseconds> timed_apply(nodequake::v1::Agent::Stub& stub,
                                             const nodequake::v1::ApplyRequest& request);
Result<std::chrono::nanoseconds> timed_revert(nodequake::v1::Agent::Stub& stub,
                                              const std::string& id);

}  // namespace nq::bench
