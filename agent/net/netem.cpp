#include "agent/net/netem.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "common/duration.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::net {
namespace {

using std::chrono::nanoseconds;

// "12.5" rather than "12.500000" in messages.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Result<nanoseconds> duration_field(const google::protobuf::Duration& d, const std::string& field,
                                   nanoseconds max) {
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 ||
      (d.seconds() > 0 && d.nanos() < 0) || (d.seconds() < 0 && d.nanos() > 0))
    return Error::invalid_argument(field, "is not a valid duration");
  if (d.seconds() < 0 || d.nanos() < 0) return Error::invalid_argument(field, "is negative");
  // Absurd values first: seconds * 1e9 could overflow int64.
  constexpr int64_t kYear = 365LL * 24 * 3600;
  if (d.seconds() > kYear)
    return Error::invalid_argument(
        field, std::to_string(d.seconds()) + "s exceeds " + format_duration(max));
  const nanoseconds v = std::chrono::seconds(d.seconds()) + nanoseconds(d.nanos());
  if (v > max)
    return Error::invalid_argument(field, format_duration(v) + " exceeds " + format_duration(max));
  return v;
}

Status percent_field(double v, const std::string& field) {
  if (std::isnan(v)) return Error::invalid_argument(field, "is not a number");
  if (v < 0 || v > 100) return Error::invalid_argument(field, num(v) + " is outside 0..100");
  return ok();
}

// A correlation without the effect it correlates would be silently ignored
// by the kernel (and refused by libnl); say so instead.
Status correlation_field(double corr, const std::string& field, double base,
                         const std::string& base_name) {
  NQ_TRY(percent_field(corr, field));
  if (corr > 0 && base <= 0) return Error::invalid_argument(field, "needs " + base_name + " > 0");
  return ok();
}

Result<DelayDistribution> distribution_field(int v, const std::string& field) {
  switch (v) {
    case nodequake::v1::DELAY_DISTRIBUTION_UNIFORM:
      return DelayDistribution::kUniform;
    case nodequake::v1::DELAY_DISTRIBUTION_NORMAL:
      return DelayDistribution::kNormal;
    case nodequake::v1::DELAY_DISTRIBUTION_PARETO:
      return DelayDistribution::kPareto;
    case nodequake::v1::DELAY_DISTRIBUTION_PARETONORMAL:
      return DelayDistribution::kParetoNormal;
    default:
      return Error::invalid_argument(field, "unknown value " + std::to_string(v));
  }
}

constexpr uint64_t kMinTbfLimit = 32768;

uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

// Largest Ethernet frame for `mtu`: tbf measures packets at L2 (skb->len).
uint64_t frame_bytes(uint32_t mtu) {
  return uint64_t{mtu} + 14;
}

// 10 ms of tokens lets short bursts through as a real link would; two frames
// keep a full-size packet (and the next) from being dropped at low rates. At
// 100 Gbit/s this is 125 MB, still within u32.
uint32_t default_buffer(uint64_t rate_bps, uint32_t mtu) {
  return static_cast<uint32_t>(std::max(2 * frame_bytes(mtu), ceil_div(rate_bps / 8, 100)));
}

// 50 ms of queue at the rate: enough for TCP to keep the shaped link busy,
// short enough not to add seconds of bufferbloat. But never less than 32 KiB:
// tbf splits a GSO packet larger than its bucket into segments and queues
// them one by one, so a shorter queue drops the tail of a single send and the
// flow pays retransmissions even while sending at the shaped rate (measured
// at 1 Mbit/s: a 6 KB queue sometimes gave 0.92 Mbit/s, 32 KB+ always 0.96).
// Nor much more: on ingress (ifb) the queue is a real bottleneck buffer, and
// 64 KiB (500 ms at 1 Mbit/s) made single TCP flows stall in RTO backoff in
// 1 run of 5 (half the goodput over 4 s); 16-32 KiB never did in 16 runs each.
uint32_t default_limit(uint64_t rate_bps, uint32_t buffer_bytes) {
  const uint64_t limit =
      std::max({ceil_div(rate_bps / 8, 20), uint64_t{buffer_bytes}, kMinTbfLimit});
  return static_cast<uint32_t>(std::min<uint64_t>(limit, std::numeric_limits<uint32_t>::max()));
}

}  // namespace

uint32_t percent_to_probability(double percent) {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return std::numeric_limits<uint32_t>::max();
  return static_cast<uint32_t>(
      std::rint(percent / 100.0 * double(std::numeric_limits<uint32_t>::max())));
}

Result<NetemParams> netem_from_proto(const nodequake::v1::NetemFault& proto,
                                     const std::string& field) {
  NetemParams p;
  const nanoseconds max = kMaxNetemDelay;
  NQ_ASSIGN_OR_RETURN(p.delay, duration_field(proto.delay(), field + ".delay", max));
  NQ_ASSIGN_OR_RETURN(p.jitter, duration_field(proto.jitter(), field + ".jitter", max));
  const bool has_jitter = p.jitter.count() > 0;

  // Correlated or distributed delay varies a delay by its jitter: both are
  // needed (libnl refuses either one missing, the kernel would ignore it).
  const bool varies = p.delay.count() > 0 && has_jitter;
  NQ_TRY(percent_field(proto.delay_correlation(), field + ".delay_correlation"));
  if (proto.delay_correlation() > 0 && !varies)
    return Error::invalid_argument(field + ".delay_correlation", "needs delay > 0 and jitter > 0");
  p.delay_correlation = proto.delay_correlation();

  NQ_ASSIGN_OR_RETURN(p.distribution,
                      distribution_field(proto.distribution(), field + ".distribution"));
  if (p.distribution != DelayDistribution::kUniform && !varies)
    return Error::invalid_argument(field + ".distribution", "needs delay > 0 and jitter > 0");

  NQ_TRY(percent_field(proto.loss(), field + ".loss"));
  NQ_TRY(correlation_field(proto.loss_correlation(), field + ".loss_correlation", proto.loss(),
                           "loss"));
  NQ_TRY(percent_field(proto.duplicate(), field + ".duplicate"));
  NQ_TRY(correlation_field(proto.duplicate_correlation(), field + ".duplicate_correlation",
                           proto.duplicate(), "duplicate"));
  NQ_TRY(percent_field(proto.corrupt(), field + ".corrupt"));
  NQ_TRY(correlation_field(proto.corrupt_correlation(), field + ".corrupt_correlation",
                           proto.corrupt(), "corrupt"));
  NQ_TRY(percent_field(proto.reorder(), field + ".reorder"));
  // netem reorders by sending some packets at once while the rest wait out
  // the delay: without a delay there is nothing to overtake.
  if (proto.reorder() > 0 && p.delay.count() == 0)
    return Error::invalid_argument(field + ".reorder", "needs delay > 0");
  NQ_TRY(correlation_field(proto.reorder_correlation(), field + ".reorder_correlation",
                           proto.reorder(), "reorder"));
  if (proto.gap() > 0 && !(proto.reorder() > 0))
    return Error::invalid_argument(field + ".gap", "needs reorder > 0");
  p.loss = proto.loss();
  p.loss_correlation = proto.loss_correlation();
  p.duplicate = proto.duplicate();
  p.duplicate_correlation = proto.duplicate_correlation();
  p.corrupt = proto.corrupt();
  p.corrupt_correlation = proto.corrupt_correlation();
  p.reorder = proto.reorder();
  p.reorder_correlation = proto.reorder_correlation();
  p.gap = proto.gap();

  if (proto.limit() == 0) {
    p.limit = kDefaultNetemLimit;
  } else if (proto.limit() > kMaxNetemLimit) {
    return Error::invalid_argument(
        field + ".limit", std::to_string(proto.limit()) + " is outside 1..1000000 packets");
  } else {
    p.limit = proto.limit();
  }

  if (p.delay.count() == 0 && !has_jitter && p.loss == 0 && p.duplicate == 0 && p.corrupt == 0 &&
      p.reorder == 0)
    return Error::invalid_argument(field, "sets no delay, loss, duplicate, corrupt or reorder");
  return p;
}

Result<TbfParams> tbf_from_proto(const nodequake::v1::BandwidthFault& proto,
                                 const std::string& field, uint32_t mtu) {
  TbfParams p;
  if (proto.rate_bps() < kMinRateBps || proto.rate_bps() > kMaxRateBps)
    return Error::invalid_argument(field + ".rate_bps", std::to_string(proto.rate_bps()) +
                                                            " is outside 8..100000000000 bit/s");
  p.rate_bps = proto.rate_bps();
  const uint64_t frame = frame_bytes(mtu);

  if (proto.buffer_bytes() == 0) {
    p.buffer_auto = true;
    p.buffer_bytes = default_buffer(p.rate_bps, mtu);
  } else {
    if (proto.buffer_bytes() < frame)
      return Error::invalid_argument(field + ".buffer_bytes",
                                     std::to_string(proto.buffer_bytes()) +
                                         " is smaller than one frame (" + std::to_string(frame) +
                                         " bytes at MTU " + std::to_string(mtu) + ")");
    p.buffer_bytes = proto.buffer_bytes();
  }

  if (proto.limit_bytes() == 0) {
    p.limit_auto = true;
    p.limit_bytes = default_limit(p.rate_bps, p.buffer_bytes);
  } else {
    if (proto.limit_bytes() < frame)
      return Error::invalid_argument(field + ".limit_bytes",
                                     std::to_string(proto.limit_bytes()) +
                                         " is smaller than one frame (" + std::to_string(frame) +
                                         " bytes at MTU " + std::to_string(mtu) + ")");
    p.limit_bytes = proto.limit_bytes();
  }
  return p;
}

TbfParams fit_to_mtu(TbfParams params, uint32_t mtu) {
  if (params.buffer_auto) params.buffer_bytes = default_buffer(params.rate_bps, mtu);
  if (params.limit_auto) params.limit_bytes = default_limit(params.rate_bps, params.buffer_bytes);
  return params;
}

NetemParams split_for_both(const NetemParams& params) {
  NetemParams p = params;
  p.delay = params.delay / 2;
  p.jitter = nanoseconds(
      static_cast<int64_t>(std::llround(double(params.jitter.count()) / std::sqrt(2.0))));
  return p;
}

Result<ShapingPlan> plan_netem(const nodequake::v1::NetemFault& proto, const std::string& field) {
  ShapingPlan plan;
  NQ_ASSIGN_OR_RETURN(plan.path, path_from_proto(proto.path(), field + ".path"));
  NQ_ASSIGN_OR_RETURN(NetemParams params, netem_from_proto(proto, field));
  const bool split = plan.path.dirs == kBoth && !proto.delay_each_direction();
  const NetemParams each = split ? split_for_both(params) : params;
  if (plan.path.dirs & kEgress) plan.egress = each;
  if (plan.path.dirs & kIngress) plan.ingress = each;
  return plan;
}

Result<ShapingPlan> plan_bandwidth(const nodequake::v1::BandwidthFault& proto,
                                   const std::string& field, uint32_t mtu) {
  ShapingPlan plan;
  NQ_ASSIGN_OR_RETURN(plan.path, path_from_proto(proto.path(), field + ".path"));
  // Each direction is its own link: both get the full rate.
  NQ_ASSIGN_OR_RETURN(TbfParams params, tbf_from_proto(proto, field, mtu));
  if (plan.path.dirs & kEgress) plan.egress = params;
  if (plan.path.dirs & kIngress) plan.ingress = params;
  return plan;
}

}  // namespace nq::net
