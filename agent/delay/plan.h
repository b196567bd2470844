// What a delay line will do, decided before anything touches the kernel:
// the validated spec, the rule map contents (netfault's compiler and
// layout), the sampler's model and the engine's limits. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/delay/direction.h"
#include "agent/delay/sampler.h"
#include "agent/net/netem.h"
#include "agent/net/path.h"
#include "agent/net/rules.h"
#include "common/result.h"

namespace nq::delay {

using namespace std::chrono_literals;

// What the line does to each direction in `dirs`: every direction gets all
// of `netem` (delay, jitter, rolls), as each of the netem path's leaves does.
// For DIRECTION_BOTH the caller passes one direction's share
// (net::split_for_both unless delay_each_direction), exactly what
// plan_netem() puts in each leaf. netem.limit is frames held at once, per
// direction; netem.reorder and gap are refused (the line does not reorder
// that way).
struct DelayLineSpec {
  std::string ifname = "eth0";  // the pod's interface, in its netns
  uint8_t dirs = net::kEgress;  // net::Dir bits: TO, FROM or both
  net::Scope scope;             // packets in scope (remote = the peer)
  net::NetemParams netem;       // loss, duplicate, corrupt rolled in BPF
  bool preserve_order = false;  // FIFO instead of release by due time
  // Heartbeat age beyond which the BPF program bypasses the line.
  nanoseconds stale_after = 100ms;
};

// The bounds of a spec.
inline constexpr nanoseconds kMinStaleAfter = 20ms;
inline constexpr nanoseconds kMaxStaleAfter = 10s;

struct DelayLinePlan {
  std::string ifname;
  uint8_t dirs = net::kEgress;  // each direction gets a TAP and an engine
  net::CompiledRules rules;
  DelayModel model;
  // The rolls and the redirect, for each direction in `dirs`
  // (probabilities 0..UINT32_MAX). redirect false: loss, duplicate and
  // corrupt only, no frame goes to the engine. A spec with none of delay,
  // loss, duplicate and corrupt still goes through the engine (a 0 ms line).
  DirectionConfig rolls;
  uint32_t limit = 0;
  bool preserve_order = false;
  nanoseconds stale_after{0};
  // A tenth of stale_after: a few missed beats (a busy CPU) do not bypass.
  nanoseconds heartbeat_period{0};
};

// Validates `spec`; errors name the field under `field` (e.g. "spec.netem").
// What the line does not do (reorder, gap) is FAILED_PRECONDITION naming it.
Result<DelayLinePlan> plan_delay_line(const DelayLineSpec& spec, const std::string& field);

// The delay-line form of a netem fault. `params` are one direction's (for
// DIRECTION_BOTH plan_netem() has already split them); plan_delay_line()
// says whether the line can do them.
DelayLineSpec spec_from_netem(const net::NetemParams& params, const net::Path& path);

// The same from a validated netem fault's leaves (NetworkFault / ShapingPlan:
// egress and/or ingress, present per path.dirs, equal when both are).
Result<DelayLineSpec> spec_from_netem_leaves(const std::optional<net::LeafSpec>& egress,
                                             const std::optional<net::LeafSpec>& ingress,
                                             const net::Path& path, const std::string& field);

}  // namespace nq::delay
