// netem leaves measured end to end: delay, loss, duplication, corruption and
// a delay distribution, each on traffic classified into the leaf's class by
// SO_PRIORITY (what the netfault BPF program does with skb->priority), with
// unclassified traffic as the control. This machine's kernel has no
// sch_netem: the tests probe and skip; the stock-kernel VM tier runs them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "agent/net/links.h"
#include "agent/net/netem.h"
#include "agent/net/qdisc.h"
#include "agent/net/qdisc_snapshot.h"
#include "tests/support/tc_state.h"
#include "tests/support/topology.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using net::kRootHandle;
using net::NlSocket;

constexpr uint16_t kMinor = 1;

class NetemNode : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto pair = NetnsPair::create();
    ASSERT_TRUE(pair.ok()) << pair.error().message();
    pair_ = std::move(*pair);
    auto server = ServerThread::start(pair_->b());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    auto before = capture_tc_state(pair_->a());
    ASSERT_TRUE(before.ok()) << before.error().message();
    before_ = *before;
    auto snap = in_a([](NlSocket& s, int i) { return net::snapshot_root(s, i); });
    ASSERT_TRUE(snap.ok()) << snap.error().message();
    snapshot_ = *snap;
    ASSERT_TRUE(in_a([](NlSocket& s, int i) { return net::install_root(s, i, kRootHandle); }).ok());
    installed_ = true;
  }

  // Every test restores the interface, also after a failed assertion.
  void TearDown() override {
    if (!installed_) return;
    auto outcome =
        in_a([&](NlSocket& s, int i) { return net::restore_root(s, i, kRootHandle, snapshot_); });
    EXPECT_TRUE(outcome.ok()) << outcome.error().message();
    auto after = capture_tc_state(pair_->a());
    ASSERT_TRUE(after.ok()) << after.error().message();
    EXPECT_EQ(*after, before_) << diff(before_, *after);
  }

  template <class F>
  auto in_a(F fn) -> std::invoke_result_t<F, NlSocket&, int> {
    return run_in_netns(pair_->a(), [&] {
      using R = std::invoke_result_t<F, NlSocket&, int>;
      auto sock = NlSocket::open_route();
      if (!sock.ok()) return R(std::move(sock).error());
      auto ifindex = net::link_index(*sock, "eth0");
      if (!ifindex.ok()) return R(std::move(ifindex).error());
      return fn(*sock, *ifindex);
    });
  }

  // Adds the netem leaf; false (and the test is skipped) without sch_netem,
  // which the kernel reports as ENOENT ("unknown qdisc kind").
  bool add_netem(const net::NetemParams& p) {
    Status st =
        in_a([&](NlSocket& s, int i) { return net::add_leaf(s, i, kRootHandle, kMinor, p); });
    if (!st.ok() && st.error().status_code() == Code::kNotFound) return false;
    EXPECT_TRUE(st.ok()) << st.error().message();
    return st.ok();
  }

  static uint32_t priority() { return net::class_id(kRootHandle, kMinor); }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<ServerThread> server_;
  TcState before_;
  net::QdiscTreeSnapshot snapshot_;
  bool installed_ = false;
};

#define NQ_ADD_NETEM_OR_SKIP(params)                                  \
  do {                                                                \
    if (!add_netem(params)) GTEST_SKIP() << "kernel lacks sch_netem"; \
    if (::testing::Test::HasFailure()) return;                        \
  } while (0)

TEST_F(NetemNode, DelayAddsAbout100ms) {
  net::NetemParams p;
  p.delay = 100ms;
  NQ_ADD_NETEM_OR_SKIP(p);
  auto shaped = run_in_netns(
      pair_->a(), [] { return traffic::tcp_echo_rtt(NetnsPair::kIpB, 7, 20, 5s, priority()); });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  const auto s = traffic::summarize(traffic::to_millis(*shaped));
  EXPECT_GE(s.p50, 99.0);
  EXPECT_LE(s.p50, 130.0);
  auto control =
      run_in_netns(pair_->a(), [] { return traffic::tcp_echo_rtt(NetnsPair::kIpB, 7, 20, 5s); });
  ASSERT_TRUE(control.ok()) << control.error().message();
  EXPECT_LT(traffic::summarize(traffic::to_millis(*control)).p50, 10.0);
}

TEST_F(NetemNode, Loss30Percent) {
  net::NetemParams p;
  p.loss = 30;
  NQ_ADD_NETEM_OR_SKIP(p);
  auto shaped = run_in_netns(pair_->a(), [] {
    return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 1000, 1ms, 300ms, priority());
  });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  EXPECT_EQ(shaped->sent, 1000);
  // 1000 Bernoulli(0.3) trials: sigma ~1.45 %, so 25..35 % is > 3 sigma.
  EXPECT_GE(shaped->loss_ratio(), 0.25);
  EXPECT_LE(shaped->loss_ratio(), 0.35);
  auto control = run_in_netns(
      pair_->a(), [] { return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 200, 1ms, 300ms); });
  ASSERT_TRUE(control.ok()) << control.error().message();
  EXPECT_EQ(control->received, 200);
}

TEST_F(NetemNode, DuplicateIsObserved) {
  net::NetemParams p;
  p.duplicate = 50;
  NQ_ADD_NETEM_OR_SKIP(p);
  auto shaped = run_in_netns(pair_->a(), [] {
    return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 1000, 1ms, 300ms, priority());
  });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  EXPECT_EQ(shaped->received, 1000);
  // Each duplicated request is echoed twice.
  EXPECT_GE(shaped->duplicates, 400);
  EXPECT_LE(shaped->duplicates, 600);
}

TEST_F(NetemNode, CorruptIsObserved) {
  net::NetemParams p;
  p.corrupt = 100;
  NQ_ADD_NETEM_OR_SKIP(p);
  auto shaped = run_in_netns(pair_->a(), [] {
    return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 500, 1ms, 300ms, priority());
  });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  // One flipped bit per packet: a bad IP or UDP checksum, a wrong MAC or
  // EtherType all make the receiver drop it; only flips in bytes nobody
  // checks (the source MAC) get through, and a payload flip the checksum
  // missed would show as corrupted.
  const int damaged = shaped->sent - shaped->received + shaped->corrupted;
  EXPECT_GT(damaged, shaped->sent / 2) << shaped->received << " of " << shaped->sent
                                       << " answered, " << shaped->corrupted << " corrupted";
  auto control = run_in_netns(
      pair_->a(), [] { return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 200, 1ms, 300ms); });
  ASSERT_TRUE(control.ok()) << control.error().message();
  EXPECT_EQ(control->received, 200);
  EXPECT_EQ(control->corrupted, 0);
}

TEST_F(NetemNode, NormalDistributionShapesTheDelay) {
  // UDP probes, and the unshaped round trip subtracted: what is left is
  // netem's delay alone, also on a slow (emulated) machine where the stack's
  // own round trip is several milliseconds.
  auto probe = [] {
    return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 200, 20ms, 500ms, priority());
  };
  auto control = run_in_netns(pair_->a(), probe);
  ASSERT_TRUE(control.ok()) << control.error().message();
  const double base = traffic::summarize(traffic::to_millis(control->rtts)).p50;
  net::NetemParams p;
  p.delay = 50ms;
  p.jitter = 10ms;
  p.distribution = net::DelayDistribution::kNormal;
  NQ_ADD_NETEM_OR_SKIP(p);
  auto shaped = run_in_netns(pair_->a(), probe);
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  ASSERT_GE(shaped->received, 190);
  const auto s = traffic::summarize(traffic::to_millis(shaped->rtts));
  EXPECT_NEAR(s.p50 - base, 50.0, 5.0) << "unshaped p50 " << base << " ms";
  // The machine's own jitter adds its variance (independent of netem's):
  // take it out, or a busy emulated guest fails a correct qdisc.
  const double own = traffic::summarize(traffic::to_millis(control->rtts)).stddev;
  const double netem_sd = std::sqrt(std::max(0.0, s.stddev * s.stddev - own * own));
  EXPECT_GT(netem_sd, 5.0) << "measured " << s.stddev << " ms, unshaped " << own << " ms";
  EXPECT_LT(netem_sd, 15.0) << "measured " << s.stddev << " ms, unshaped " << own << " ms";
}

TEST_F(NetemNode, SplitForBothGivesTheRequestedRoundTrip) {
  // Egress half here; the ingress half would be on the ifb. Measuring one
  // direction shows the split delay.
  net::NetemParams full;
  full.delay = 100ms;
  NQ_ADD_NETEM_OR_SKIP(net::split_for_both(full));
  auto shaped = run_in_netns(
      pair_->a(), [] { return traffic::tcp_echo_rtt(NetnsPair::kIpB, 7, 20, 5s, priority()); });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  const auto s = traffic::summarize(traffic::to_millis(*shaped));
  EXPECT_GE(s.p50, 49.0);
  EXPECT_LE(s.p50, 70.0);
}

}  // namespace
}  // namespace nq::testing
