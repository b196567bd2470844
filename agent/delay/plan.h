// What a delay line will do, decided before anything touches the kernel:
// the validated spec, the rule map contents (netfault's compiler and
// layout), the sampler's model and the engine's limits. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/delay/sampler.h"
#include "agent/net/netem.h"
#include "agent/net/path.h"
#include "agent/net/rules.h"
#include "common/result.h"

namespace nq::delay {

using namespace std::chrono_literals;

struct DelayLineSpec {
  std::string ifname = "eth0";  // the pod's interface, in its netns
  net::Scope scope;             // packets leaving the pod that are delayed
  nanoseconds delay{0};
  nanoseconds jitter{0};
  double delay_correlation = 0;  // percent
  net::DelayDistribution distribution = net::DelayDistribution::kUniform;
  double loss = 0;                           // percent, rolled in BPF
  uint32_t limit = net::kDefaultNetemLimit;  // frames held at once
  bool preserve_order = false;               // FIFO instead of release by due time
  // Heartbeat age beyond which the BPF program bypasses the line.
  nanoseconds stale_after = 100ms;
};

// The bounds of a spec.
inline constexpr nanoseconds kMinStaleAfter = 20ms;
inline constexpr nanoseconds kMaxStaleAfter = 10s;

struct DelayLinePlan {
  std::string ifname;
  net::CompiledRules rules;
  DelayModel model;
  uint32_t loss = 0;      // 0..UINT32_MAX
  // false: loss only, no frame goes to the engine. A spec without delay
  // and loss still goes through the engine (a 0 ms line).
  bool redirect = false;
  uint32_t limit = 0;
  bool preserve_order = false;
  nanoseconds stale_after{0};
  // A tenth of stale_after: a few missed beats (a busy CPU) do not bypass.
  nanoseconds heartbeat_period{0};
};

// Validates `spec`; errors name the field under `field` (e.g. "spec.netem").
Result<DelayLinePlan> plan_delay_line(const DelayLineSpec& spec, const std::string& field);

// The delay-line form of a netem fault: egress only, and without what the
// line does not do yet (duplicate, corrupt, reorder, loss correlation),
// each refused with FAILED_PRECONDITION naming the field.
Result<DelayLineSpec> spec_from_netem(const net::NetemParams& params, const net::Path& path,
                                      const std::string& field);

}  // namespace nq::delay
