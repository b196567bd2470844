// Validation of Apply requests: everything a client can get wrong is caught
// here, before the journal or the kernel is touched, with an error that names
// the field ("spec.netem.loss: 150 is outside 0..100").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/net/netem.h"
#include "agent/net/path.h"
#include "common/result.h"

namespace nodequake::v1 {
class ApplyRequest;
class FaultSpec;
}  // namespace nodequake::v1

namespace nq::core {

enum class FaultKind { kNetem, kBandwidth, kPartition };

// The kind's name in the API, metrics labels and logs.
std::string_view kind_name(FaultKind kind);

// A validated network fault: where it applies and, for shaping kinds, the
// leaf qdisc per direction (split for DIRECTION_BOTH where the spec asks).
struct NetworkFault {
  FaultKind kind = FaultKind::kPartition;
  net::Path path;
  std::optional<net::LeafSpec> egress;
  std::optional<net::LeafSpec> ingress;
};

struct Limits {
  std::chrono::nanoseconds max_ttl = std::chrono::hours(24);
  std::chrono::nanoseconds min_lease = std::chrono::seconds(1);
};

struct ValidatedApply {
  std::string id;
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;  // optional guard
  std::vector<std::string> containers;
  NetworkFault fault;
  std::chrono::nanoseconds ttl{0};
  std::string lease_holder;  // "" = no lease
  std::chrono::nanoseconds lease_duration{0};
};

Result<ValidatedApply> validate_apply(const nodequake::v1::ApplyRequest& request,
                                      const Limits& limits);

// Kernel capabilities (names of agent/caps/probe.h) a fault needs, each with
// what it is needed for ("netem fault").
std::vector<std::pair<std::string, std::string>> required_capabilities(const NetworkFault& fault);

// Injection ids: 1..128 characters of [A-Za-z0-9._:/-].
Status validate_id(std::string_view id, std::string_view field);

}  // namespace nq::core
