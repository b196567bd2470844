// The delay line on this kernel (no sch_netem here: the engine is what
// delays): accuracy, distribution, loss, scope, and a graceful stop.
#include "agent/delay/delay_line.h"

#include <gtest/gtest.h>

#include "tests/node/delay/delay_fixture.h"

namespace nq::testing {
namespace {

using delay::DelayLine;
using delay::DelayLineSpec;

constexpr const char* kB = NetnsPair::kIpB;

using DelayLineTest = DelayLineFixture;

TEST_F(DelayLineTest, FixedDelayOf100msIsWithinAMillisecond) {
  DelayLineSpec spec;
  spec.netem.delay = 100ms;
  auto line = start(spec);
  ASSERT_TRUE(line);
  auto r = watched_udp_probes(env_->a(), kB, 200, 5ms, 400ms, 100);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_EQ(r->all.received, r->all.sent);
  const auto s = r->undisturbed_ms();
  std::printf("100ms fixed: mean %.3f sd %.3f min %.3f max %.3f ms; %s\n", s.mean, s.stddev, s.min,
              s.max, r->describe().c_str());
  ASSERT_GE(r->undisturbed.received, 100) << r->describe();
  EXPECT_NEAR(s.mean, 100.0, 1.0);
  EXPECT_GE(rtt_ms(r->all).min, 100.0);  // never early
  auto st = line->stats();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->bpf.redirected, unsigned(r->all.sent));
  EXPECT_EQ(st->bpf.returned, unsigned(r->all.sent));
  EXPECT_EQ(st->bpf.bypassed, 0u);
}

TEST_F(DelayLineTest, Normal500ms100msHasItsMeanAndSigma) {
  DelayLineSpec spec;
  spec.netem.delay = 500ms;
  spec.netem.jitter = 100ms;
  spec.netem.distribution = net::DelayDistribution::kNormal;
  auto line = start(spec);
  ASSERT_TRUE(line);
  // Pipelined: 400 probes in 2 s, the slowest back ~1 s later.
  auto r = udp_probes(env_->a(), kB, 400, 5ms, 1200ms);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_GE(r->received, 398);
  const auto s = rtt_ms(*r);
  std::printf("500ms +- 100ms normal: n %zu mean %.2f sd %.2f p50 %.2f p99 %.2f ms\n", s.n, s.mean,
              s.stddev, s.p50, s.p99);
  EXPECT_NEAR(s.mean, 500.0, 25.0);    // 5 %
  EXPECT_NEAR(s.stddev, 100.0, 20.0);  // 20 %
}

TEST_F(DelayLineTest, Loss30PercentIsRolledInBpf) {
  DelayLineSpec spec;
  spec.netem.delay = 5ms;
  spec.netem.loss = 30;
  auto line = start(spec);
  ASSERT_TRUE(line);
  auto r = udp_probes(env_->a(), kB, 1000, 1ms, 300ms);
  ASSERT_TRUE(r.ok()) << r.error().message();
  std::printf("loss 30%%: %.1f%% of %d\n", 100 * r->loss_ratio(), r->sent);
  EXPECT_GE(r->loss_ratio(), 0.25);
  EXPECT_LE(r->loss_ratio(), 0.35);
  auto st = line->stats();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->bpf.lost + st->bpf.redirected, st->bpf.matched);
  EXPECT_EQ(int(st->bpf.redirected), r->received);
}

TEST_F(DelayLineTest, UnmatchedDestinationIsNotDelayed) {
  DelayLineSpec spec;
  spec.netem.delay = 100ms;
  auto line = start(spec, std::string(DelayEnv::kIpB2) + "/32");
  ASSERT_TRUE(line);
  Scoped r;
  ASSERT_NO_FATAL_FAILURE(probe_scoped(r));
  const auto& so = r.unmatched;
  const auto& sm = r.matched;
  std::printf("unmatched (UDP): mean %.3f max %.3f ms; matched (TCP echo): min %.3f p50 %.3f ms\n",
              so.mean, so.max, sm.min, sm.p50);
  ASSERT_EQ(r.unmatched_received, 50);
  EXPECT_LT(so.max, 20.0) << r.unmatched_stalls;
  // A TCP exchange may also wait for an ACK that the line delayed: the
  // median, not the mean, is the line's delay.
  EXPECT_GE(sm.min, 99.9);
  EXPECT_NEAR(sm.p50, 100.0, 2.0);
  auto st = line->stats();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_GE(st->bpf.redirected, 10u);
}

TEST_F(DelayLineTest, StopDrainsWhatIsHeldAndLeavesNothing) {
  DelayLineSpec spec;
  spec.netem.delay = 2s;
  auto line = start(spec);
  ASSERT_TRUE(line);
  const std::string tap = line->tap_name();
  ASSERT_EQ(link_exists(env_->a(), tap).value(), true);
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", true).value(), 1u);
  // Probes held for 2 s; the stop releases them at once.
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(line->stop().ok());
  });
  auto r = udp_probes(env_->a(), kB, 20, 5ms, 800ms);
  stopper.join();
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->received, 20) << "held frames were dropped instead of drained";
  EXPECT_LT(rtt_ms(*r).max, 1000.0);
  EXPECT_EQ(link_exists(env_->a(), tap).value(), false);
  EXPECT_EQ(tcx_programs(env_->a(), "eth0", true).value(), 0u);
  auto after = watched_udp_probes(env_->a(), kB, 5, 2ms, 100ms, 3);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->all.received, after->all.sent);
  EXPECT_LT(after->undisturbed_ms().max, 20.0) << after->describe();
}

}  // namespace
}  // namespace nq::testing
