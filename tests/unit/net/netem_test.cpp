// Shaping fault parameters: validation (errors name the field), defaults,
// the BOTH split, and the natively generated delay distribution tables.
#include "agent/net/netem.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "agent/net/netem_dist.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::net {
namespace {

using namespace std::chrono_literals;
using nodequake::v1::BandwidthFault;
using nodequake::v1::NetemFault;

void set_duration(google::protobuf::Duration* d, std::chrono::nanoseconds v) {
  d->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(v).count());
  d->set_nanos(static_cast<int32_t>((v % 1s).count()));
}

NetemFault delay_fault(std::chrono::nanoseconds delay) {
  NetemFault f;
  set_duration(f.mutable_delay(), delay);
  return f;
}

// The error message of a failed conversion, or "" when it succeeded.
std::string netem_error(const NetemFault& f) {
  auto r = netem_from_proto(f, "spec.netem");
  return r.ok() ? "" : r.error().message();
}

std::string tbf_error(const BandwidthFault& f, uint32_t mtu = 1500) {
  auto r = tbf_from_proto(f, "spec.bandwidth", mtu);
  return r.ok() ? "" : r.error().message();
}

TEST(NetemParams, ConvertsEveryField) {
  NetemFault f = delay_fault(100ms);
  set_duration(f.mutable_jitter(), 10ms);
  f.set_delay_correlation(25);
  f.set_distribution(nodequake::v1::DELAY_DISTRIBUTION_PARETONORMAL);
  f.set_loss(30);
  f.set_loss_correlation(5);
  f.set_duplicate(1.5);
  f.set_duplicate_correlation(2);
  f.set_corrupt(0.1);
  f.set_corrupt_correlation(3);
  f.set_reorder(10);
  f.set_reorder_correlation(50);
  f.set_gap(5);
  f.set_limit(5000);
  auto p = netem_from_proto(f, "spec.netem");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->delay, 100ms);
  EXPECT_EQ(p->jitter, 10ms);
  EXPECT_EQ(p->delay_correlation, 25);
  EXPECT_EQ(p->distribution, DelayDistribution::kParetoNormal);
  EXPECT_EQ(p->loss, 30);
  EXPECT_EQ(p->loss_correlation, 5);
  EXPECT_EQ(p->duplicate, 1.5);
  EXPECT_EQ(p->duplicate_correlation, 2);
  EXPECT_EQ(p->corrupt, 0.1);
  EXPECT_EQ(p->corrupt_correlation, 3);
  EXPECT_EQ(p->reorder, 10);
  EXPECT_EQ(p->reorder_correlation, 50);
  EXPECT_EQ(p->gap, 5u);
  EXPECT_EQ(p->limit, 5000u);
}

TEST(NetemParams, LimitDefaultsTo1000) {
  auto p = netem_from_proto(delay_fault(1ms), "spec.netem");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->limit, 1000u);
  NetemFault f = delay_fault(1ms);
  f.set_limit(1'000'000);
  EXPECT_EQ(netem_error(f), "");
  f.set_limit(1'000'001);
  EXPECT_EQ(netem_error(f), "spec.netem.limit: 1000001 is outside 1..1000000 packets");
}

TEST(NetemParams, LossAloneIsAnEffect) {
  NetemFault f;
  f.set_loss(100);
  EXPECT_EQ(netem_error(f), "");
  f = NetemFault();
  f.set_duplicate(1);
  EXPECT_EQ(netem_error(f), "");
  f = NetemFault();
  f.set_corrupt(1);
  EXPECT_EQ(netem_error(f), "");
  f = NetemFault();
  set_duration(f.mutable_jitter(), 5ms);
  EXPECT_EQ(netem_error(f), "");
}

TEST(NetemParams, NoEffectIsAnError) {
  EXPECT_EQ(netem_error(NetemFault()),
            "spec.netem: sets no delay, loss, duplicate, corrupt or reorder");
}

TEST(NetemParams, ErrorsNameTheField) {
  struct Case {
    const char* name;
    std::function<void(NetemFault&)> mutate;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"delay too long", [](NetemFault& f) { set_duration(f.mutable_delay(), 61s); },
       "spec.netem.delay: 1m1s exceeds 1m0s"},
      {"delay far too long", [](NetemFault& f) { f.mutable_delay()->set_seconds(1LL << 40); },
       "spec.netem.delay: 1099511627776s exceeds 1m0s"},
      {"negative delay", [](NetemFault& f) { set_duration(f.mutable_delay(), -1s); },
       "spec.netem.delay: is negative"},
      {"mixed signs",
       [](NetemFault& f) {
         f.mutable_delay()->set_seconds(1);
         f.mutable_delay()->set_nanos(-5);
       },
       "spec.netem.delay: is not a valid duration"},
      {"jitter too long", [](NetemFault& f) { set_duration(f.mutable_jitter(), 60s + 1ns); },
       "spec.netem.jitter: 1m0.000000001s exceeds 1m0s"},
      {"loss > 100", [](NetemFault& f) { f.set_loss(150); },
       "spec.netem.loss: 150 is outside 0..100"},
      {"loss < 0", [](NetemFault& f) { f.set_loss(-1); }, "spec.netem.loss: -1 is outside 0..100"},
      {"loss NaN", [](NetemFault& f) { f.set_loss(std::nan("")); },
       "spec.netem.loss: is not a number"},
      {"duplicate", [](NetemFault& f) { f.set_duplicate(100.5); },
       "spec.netem.duplicate: 100.5 is outside 0..100"},
      {"corrupt", [](NetemFault& f) { f.set_corrupt(101); },
       "spec.netem.corrupt: 101 is outside 0..100"},
      {"reorder", [](NetemFault& f) { f.set_reorder(-0.5); },
       "spec.netem.reorder: -0.5 is outside 0..100"},
      {"loss correlation range",
       [](NetemFault& f) {
         f.set_loss(1);
         f.set_loss_correlation(200);
       },
       "spec.netem.loss_correlation: 200 is outside 0..100"},
      {"loss correlation without loss", [](NetemFault& f) { f.set_loss_correlation(10); },
       "spec.netem.loss_correlation: needs loss > 0"},
      {"duplicate correlation without duplicate",
       [](NetemFault& f) { f.set_duplicate_correlation(10); },
       "spec.netem.duplicate_correlation: needs duplicate > 0"},
      {"corrupt correlation without corrupt", [](NetemFault& f) { f.set_corrupt_correlation(1); },
       "spec.netem.corrupt_correlation: needs corrupt > 0"},
      {"delay correlation without jitter", [](NetemFault& f) { f.set_delay_correlation(10); },
       "spec.netem.delay_correlation: needs delay > 0 and jitter > 0"},
      {"distribution without jitter",
       [](NetemFault& f) { f.set_distribution(nodequake::v1::DELAY_DISTRIBUTION_NORMAL); },
       "spec.netem.distribution: needs delay > 0 and jitter > 0"},
      {"unknown distribution",
       [](NetemFault& f) { f.set_distribution(static_cast<nodequake::v1::DelayDistribution>(9)); },
       "spec.netem.distribution: unknown value 9"},
      {"reorder without delay",
       [](NetemFault& f) {
         f.clear_delay();
         f.set_loss(1);
         f.set_reorder(10);
       },
       "spec.netem.reorder: needs delay > 0"},
      {"reorder correlation without reorder", [](NetemFault& f) { f.set_reorder_correlation(3); },
       "spec.netem.reorder_correlation: needs reorder > 0"},
      {"gap without reorder", [](NetemFault& f) { f.set_gap(5); },
       "spec.netem.gap: needs reorder > 0"},
  };
  for (const Case& c : cases) {
    NetemFault f = delay_fault(10ms);
    c.mutate(f);
    EXPECT_EQ(netem_error(f), c.error) << c.name;
  }
}

TEST(NetemParams, BoundariesAreAccepted) {
  NetemFault f = delay_fault(60s);
  set_duration(f.mutable_jitter(), 60s);
  f.set_loss(100);
  f.set_loss_correlation(100);
  f.set_delay_correlation(0);
  f.set_reorder(100);
  f.set_gap(1);
  EXPECT_EQ(netem_error(f), "");
}

TEST(NetemParams, PercentToKernelProbability) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
  EXPECT_EQ(percent_to_probability(0), 0u);
  EXPECT_EQ(percent_to_probability(-3), 0u);
  EXPECT_EQ(percent_to_probability(100), kMax);
  EXPECT_EQ(percent_to_probability(50), 2147483648u);  // rint(0.5 * UINT32_MAX)
  EXPECT_EQ(percent_to_probability(30), static_cast<uint32_t>(std::rint(0.3 * kMax)));
  EXPECT_EQ(percent_to_probability(1e-9), 0u);
}

TEST(NetemParams, SplitForBothHalvesDelayAndScalesJitter) {
  NetemParams p;
  p.delay = 100ms;
  p.jitter = 10ms;
  p.loss = 30;
  p.duplicate = 2;
  p.reorder = 5;
  p.gap = 3;
  p.delay_correlation = 20;
  p.distribution = DelayDistribution::kNormal;
  const NetemParams half = split_for_both(p);
  EXPECT_EQ(half.delay, 50ms);
  // Two independent jitters of j/sqrt(2) add up (in quadrature) to j.
  EXPECT_EQ(half.jitter.count(), 7071068);
  const double each = double(half.jitter.count());
  EXPECT_NEAR(std::sqrt(2 * each * each), double(p.jitter.count()), 2.0);
  NetemParams expect = p;
  expect.delay = half.delay;
  expect.jitter = half.jitter;
  EXPECT_EQ(half, expect);  // everything else unchanged
}

TEST(NetemPlan, DirectionsAndSplit) {
  NetemFault f = delay_fault(100ms);
  f.set_loss(10);
  auto to = plan_netem(f, "spec.netem");
  ASSERT_TRUE(to.ok()) << to.error().message();
  ASSERT_TRUE(to->egress.has_value());
  EXPECT_FALSE(to->ingress.has_value());
  EXPECT_EQ(std::get<NetemParams>(*to->egress).delay, 100ms);

  f.mutable_path()->set_direction(nodequake::v1::DIRECTION_FROM);
  auto from = plan_netem(f, "spec.netem");
  ASSERT_TRUE(from.ok());
  EXPECT_FALSE(from->egress.has_value());
  EXPECT_EQ(std::get<NetemParams>(*from->ingress).delay, 100ms);

  f.mutable_path()->set_direction(nodequake::v1::DIRECTION_BOTH);
  auto both = plan_netem(f, "spec.netem");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(std::get<NetemParams>(*both->egress).delay, 50ms);
  EXPECT_EQ(std::get<NetemParams>(*both->ingress).delay, 50ms);
  EXPECT_EQ(std::get<NetemParams>(*both->ingress).loss, 10);

  f.set_delay_each_direction(true);
  auto each = plan_netem(f, "spec.netem");
  ASSERT_TRUE(each.ok());
  EXPECT_EQ(std::get<NetemParams>(*each->egress).delay, 100ms);
  EXPECT_EQ(std::get<NetemParams>(*each->ingress).delay, 100ms);
}

TEST(NetemPlan, PathErrorsAreNamed) {
  NetemFault f = delay_fault(1ms);
  f.mutable_path()->set_interface("a/b");
  auto p = plan_netem(f, "spec.netem");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().message().rfind("spec.netem.path.interface: ", 0), 0u) << p.error().message();
}

// ------------------------------------------------------------------ tbf

BandwidthFault rate(uint64_t bps) {
  BandwidthFault f;
  f.set_rate_bps(bps);
  return f;
}

TEST(TbfParams, DefaultsAtOneMegabit) {
  auto p = tbf_from_proto(rate(1'000'000), "spec.bandwidth");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->rate_bps, 1'000'000u);
  EXPECT_EQ(p->buffer_bytes, 2u * 1514);  // 10 ms would be 1250 bytes: two frames win
  EXPECT_EQ(p->limit_bytes, 32768u);      // 50 ms would be 6250 bytes: the floor wins
}

TEST(TbfParams, DefaultsScaleWithRate) {
  auto fast = tbf_from_proto(rate(100'000'000'000ULL), "spec.bandwidth");
  ASSERT_TRUE(fast.ok()) << fast.error().message();
  EXPECT_EQ(fast->buffer_bytes, 125'000'000u);  // 10 ms at 12.5 GB/s
  EXPECT_EQ(fast->limit_bytes, 625'000'000u);   // 50 ms
  auto slow = tbf_from_proto(rate(8), "spec.bandwidth");
  ASSERT_TRUE(slow.ok()) << slow.error().message();
  EXPECT_EQ(slow->buffer_bytes, 3028u);
  EXPECT_EQ(slow->limit_bytes, 32768u);
  auto jumbo = tbf_from_proto(rate(1'000'000), "spec.bandwidth", 9000);
  ASSERT_TRUE(jumbo.ok());
  EXPECT_EQ(jumbo->buffer_bytes, 2u * 9014);
  EXPECT_GE(jumbo->limit_bytes, jumbo->buffer_bytes);
  auto mid = tbf_from_proto(rate(10'000'000'000ULL), "spec.bandwidth");
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->buffer_bytes, 12'500'000u);
  EXPECT_EQ(mid->limit_bytes, 62'500'000u);
}

TEST(TbfParams, ExplicitValuesAreKeptAndChecked) {
  BandwidthFault f = rate(5'000'000);
  f.set_buffer_bytes(20000);
  f.set_limit_bytes(100000);
  auto p = tbf_from_proto(f, "spec.bandwidth");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(p->buffer_bytes, 20000u);
  EXPECT_EQ(p->limit_bytes, 100000u);

  f.set_limit_bytes(0);  // the default is at least an explicit buffer
  f.set_buffer_bytes(100000);
  p = tbf_from_proto(f, "spec.bandwidth");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->limit_bytes, 100000u);
  f.set_rate_bps(80'000'000);  // 50 ms at 10 MB/s
  p = tbf_from_proto(f, "spec.bandwidth");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->limit_bytes, 500000u);

  f.set_buffer_bytes(1000);
  EXPECT_EQ(tbf_error(f),
            "spec.bandwidth.buffer_bytes: 1000 is smaller than one frame (1514 bytes at MTU 1500)");
  f.set_buffer_bytes(0);
  f.set_limit_bytes(100);
  EXPECT_EQ(tbf_error(f),
            "spec.bandwidth.limit_bytes: 100 is smaller than one frame (1514 bytes at MTU 1500)");
}

TEST(TbfParams, RateBounds) {
  EXPECT_EQ(tbf_error(rate(0)), "spec.bandwidth.rate_bps: 0 is outside 8..100000000000 bit/s");
  EXPECT_EQ(tbf_error(rate(7)), "spec.bandwidth.rate_bps: 7 is outside 8..100000000000 bit/s");
  EXPECT_EQ(tbf_error(rate(100'000'000'001ULL)),
            "spec.bandwidth.rate_bps: 100000000001 is outside 8..100000000000 bit/s");
  EXPECT_EQ(tbf_error(rate(8)), "");
  EXPECT_EQ(tbf_error(rate(100'000'000'000ULL)), "");
}

TEST(TbfPlan, BothDirectionsGetTheFullRate) {
  BandwidthFault f = rate(2'000'000);
  f.mutable_path()->set_direction(nodequake::v1::DIRECTION_BOTH);
  auto p = plan_bandwidth(f, "spec.bandwidth");
  ASSERT_TRUE(p.ok()) << p.error().message();
  EXPECT_EQ(std::get<TbfParams>(*p->egress).rate_bps, 2'000'000u);
  EXPECT_EQ(std::get<TbfParams>(*p->ingress).rate_bps, 2'000'000u);
}

// ------------------------------------------------------------ distributions

uint64_t fnv1a(const std::vector<int16_t>& t) {
  uint64_t h = 1469598103934665603ULL;
  for (int16_t x : t) {
    const auto u = static_cast<uint16_t>(x);
    for (int k = 0; k < 2; ++k) {
      h ^= (u >> (8 * k)) & 0xff;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

// Golden values: these tables are byte-identical to iproute2 6.1's
// normal.dist, pareto.dist and paretonormal.dist (checked when written).
TEST(NetemDistribution, MatchesIproute2Tables) {
  const auto normal = netem_distribution_table(DelayDistribution::kNormal);
  ASSERT_EQ(normal.size(), kNetemDistSize);
  EXPECT_EQ(normal.front(), -32768);
  EXPECT_EQ(normal[2048], 0);
  EXPECT_EQ(normal.back(), 28858);
  EXPECT_EQ(fnv1a(normal), 0x3d41624f273a18ceULL);

  const auto pareto = netem_distribution_table(DelayDistribution::kPareto);
  ASSERT_EQ(pareto.size(), kNetemDistSize);
  EXPECT_EQ(pareto.front(), -5461);
  EXPECT_EQ(pareto[2048], -2622);
  EXPECT_EQ(pareto.back(), 32767);
  EXPECT_EQ(fnv1a(pareto), 0xbb07b99d2cea45b0ULL);

  const auto pn = netem_distribution_table(DelayDistribution::kParetoNormal);
  ASSERT_EQ(pn.size(), kNetemDistSize);
  EXPECT_EQ(pn.front(), -12305);
  EXPECT_EQ(pn[2048], -1966);
  EXPECT_EQ(pn.back(), 31789);
  EXPECT_EQ(fnv1a(pn), 0x2a055fdf30159dffULL);

  EXPECT_TRUE(netem_distribution_table(DelayDistribution::kUniform).empty());
}

TEST(NetemDistribution, NormalIsAnInverseCdf) {
  const auto t = netem_distribution_table(DelayDistribution::kNormal);
  EXPECT_TRUE(std::is_sorted(t.begin(), t.end()));
  // Symmetric around 0 with unit sigma = NETEM_DIST_SCALE: the 84th
  // percentile sits one sigma above the mean.
  EXPECT_NEAR(t[size_t(0.8413 * kNetemDistSize)], kNetemDistScale, 60);
  EXPECT_NEAR(t[size_t(0.1587 * kNetemDistSize)], -kNetemDistScale, 60);
}

}  // namespace
}  // namespace nq::net

namespace nq::net {
namespace {

TEST(TbfParams, DefaultsFollowTheDeviceMtu) {
  nodequake::v1::BandwidthFault proto;
  proto.set_rate_bps(1'000'000);
  auto planned = tbf_from_proto(proto, "spec.bandwidth");
  ASSERT_TRUE(planned.ok());
  EXPECT_TRUE(planned->buffer_auto);
  const TbfParams jumbo = fit_to_mtu(*planned, 9001);
  EXPECT_EQ(jumbo.buffer_bytes, 2u * (9001 + 14));
  EXPECT_EQ(jumbo.limit_bytes, 32768u);
  EXPECT_EQ(fit_to_mtu(*planned, 1500), *planned);

  proto.set_buffer_bytes(20000);
  proto.set_limit_bytes(40000);
  auto explicit_values = tbf_from_proto(proto, "spec.bandwidth");
  ASSERT_TRUE(explicit_values.ok());
  EXPECT_EQ(fit_to_mtu(*explicit_values, 9001), *explicit_values);  // the client's choice stands
}

}  // namespace
}  // namespace nq::net
