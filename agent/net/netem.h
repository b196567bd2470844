// Shaping fault parameters: the validated, kernel-ready form of the NetemFault
// and BandwidthFault protos, and how a fault is split across directions.
// Pure functions only; agent/net/qdisc.h turns these into qdiscs.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "agent/net/path.h"
#include "common/result.h"

namespace nodequake::v1 {
class NetemFault;
class BandwidthFault;
}  // namespace nodequake::v1

namespace nq::net {

enum class DelayDistribution : uint8_t { kUniform, kNormal, kPareto, kParetoNormal };

// sch_netem. Percentages and correlations are 0..100 as in the API; the
// kernel's 32-bit probability scale is applied when the message is built.
struct NetemParams {
  std::chrono::nanoseconds delay{0};
  std::chrono::nanoseconds jitter{0};
  double delay_correlation = 0;
  DelayDistribution distribution = DelayDistribution::kUniform;
  double loss = 0;
  double loss_correlation = 0;
  double duplicate = 0;
  double duplicate_correlation = 0;
  double corrupt = 0;
  double corrupt_correlation = 0;
  double reorder = 0;
  double reorder_correlation = 0;
  uint32_t gap = 0;
  uint32_t limit = 1000;  // packets
  bool operator==(const NetemParams&) const = default;
};

// sch_tbf, all resolved (no "default" left).
struct TbfParams {
  uint64_t rate_bps = 0;      // bits per second
  uint32_t buffer_bytes = 0;  // bucket (burst) size
  uint32_t limit_bytes = 0;   // queue of packets waiting for tokens
  // Chosen by nodequake rather than the client: recomputed for the shaped
  // device's MTU (fit_to_mtu) once it is known.
  bool buffer_auto = false;
  bool limit_auto = false;
  bool operator==(const TbfParams&) const = default;
};

// What one HTB leaf class carries.
using LeafSpec = std::variant<NetemParams, TbfParams>;

inline constexpr std::chrono::seconds kMaxNetemDelay{60};
inline constexpr uint32_t kDefaultNetemLimit = 1000;
inline constexpr uint32_t kMaxNetemLimit = 1'000'000;
inline constexpr uint64_t kMinRateBps = 8;
inline constexpr uint64_t kMaxRateBps = 100'000'000'000ULL;
inline constexpr uint32_t kDefaultMtu = 1500;

// Validates a NetemFault's parameters (not its path); errors name the field
// under `field`, e.g. "spec.netem.loss: 150 is outside 0..100".
Result<NetemParams> netem_from_proto(const nodequake::v1::NetemFault& proto,
                                     const std::string& field);

// Validates a BandwidthFault's parameters and fills the defaults: buffer
// ~10 ms at the rate but at least two frames of `mtu` (so a full-size packet
// always fits in the bucket: a smaller bucket drops it), limit ~50 ms at the
// rate but at least one buffer and 64 KiB (one GSO packet). `mtu` is the
// shaped device's MTU.
Result<TbfParams> tbf_from_proto(const nodequake::v1::BandwidthFault& proto,
                                 const std::string& field, uint32_t mtu = kDefaultMtu);

// One direction's share of a netem fault applied to both directions: half the
// delay each way and jitter/sqrt(2) each way, so that the round trip sees the
// requested delay and (independent jitters adding in quadrature) the requested
// jitter. Loss, duplication, corruption and reordering are per packet and stay.
NetemParams split_for_both(const NetemParams& params);

// The defaults of `params` recomputed for a device of `mtu` (a jumbo-frame
// pod interface needs a bigger bucket than the 1500-byte default plans with).
TbfParams fit_to_mtu(TbfParams params, uint32_t mtu);

// A shaping fault resolved per direction: what goes on the pod's egress
// (interface root) and on its ingress (the ifb's root); nullopt = nothing.
struct ShapingPlan {
  Path path;
  std::optional<LeafSpec> egress;
  std::optional<LeafSpec> ingress;
};

// `field` is the fault's path in the request, e.g. "spec.netem".
Result<ShapingPlan> plan_netem(const nodequake::v1::NetemFault& proto, const std::string& field);
Result<ShapingPlan> plan_bandwidth(const nodequake::v1::BandwidthFault& proto,
                                   const std::string& field, uint32_t mtu = kDefaultMtu);

// API percentage (0..100) to the kernel's probability scale (0..UINT32_MAX),
// rounded like iproute2's get_percent().
uint32_t percent_to_probability(double percent);

}  // namespace nq::net
