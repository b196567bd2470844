// netem through the agent's own API, between sandbox pods, measured with real
// traffic: the seed's 500 ms +- 100 ms (normal) scenario, loss, duplicate,
// corrupt, scoping by port and CIDR, and `direction: both`. Needs sch_netem:
// on kernels without it (this project's build machines) the tests say so and
// skip; the vm tier runs them on Debian's stock kernel, where a skip fails.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>

#include "agent/caps/probe.h"
#include "common/netns.h"
#include "common/traffic.h"
#include "tests/node/core/agent_harness.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;

class AgentNetemTest : public ::testing::Test {
 protected:
  static constexpr const char* kClient = "client";
  static constexpr const char* kServer = "server";
  static constexpr const char* kOther = "other";

  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    // The agent's own probe, before building anything.
    for (const Capability& c : probe_network())
      if (c.name == "sch_netem" && !c.available)
        GTEST_SKIP() << "kernel lacks sch_netem: " << c.detail;
    auto up = env_.up({env_.pod(kClient), env_.pod(kServer), env_.pod(kOther)});
    ASSERT_TRUE(up.ok()) << up.error().message();
    for (const char* name : {kClient, kServer, kOther}) {
      auto netns = env_.netns(name);
      ASSERT_TRUE(netns.ok()) << netns.error().message();
      netns_.emplace(name, std::move(*netns));
      ips_[name] = env_.ip(name).value();
    }
    auto states = capture_pods(env_, {kClient, kServer, kOther});
    ASSERT_TRUE(states.ok()) << states.error().message();
    baseline_ = *states;
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
    started_ = true;
    v1::ProbeResponse probe;
    ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &probe).ok());
    for (const auto& c : probe.capabilities())
      if (c.name() == "sch_netem" && !c.available())
        GTEST_SKIP() << "kernel lacks sch_netem: " << c.detail();
  }

  void TearDown() override {
    if (!started_) return;
    auto status = agent_.stop(SIGTERM);
    ASSERT_TRUE(status.ok()) << status.error().message();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent_.log_tail();
    auto after = capture_pods(env_, {kClient, kServer, kOther});
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(diff(baseline_, *after), "") << "kernel state left behind";
    if (HasFailure()) std::cerr << "agent log:\n" << agent_.log_tail(20000);
  }

  // Applies a netem fault on the client (asserting success); `edit` fills it.
  void inject(const std::string& id, const std::function<void(v1::NetemFault&)>& edit) {
    v1::FaultSpec spec;
    edit(*spec.mutable_netem());
    v1::ApplyResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply,
                          apply_request(id, env_.ns(), kClient, spec), &resp);
    ASSERT_TRUE(st.ok()) << id << ": " << st.error_message();
  }
  void revert(const std::string& id) {
    v1::RevertRequest req;
    req.set_id(id);
    v1::RevertResponse resp;
    ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, req, &resp).ok());
  }

  Result<traffic::UdpProbeResult> udp(const std::string& to, int count,
                                      std::chrono::nanoseconds interval,
                                      std::chrono::nanoseconds linger) {
    const std::string ip = ips_.at(to);
    return run_in_netns(netns_.at(kClient),
                        [&] { return traffic::udp_echo_probe(ip, 7, count, interval, linger); });
  }
  // p50 of the TCP handshake time from the client, in ms.
  double connect_ms(const std::string& to, uint16_t port, int n = 9) {
    const std::string ip = ips_.at(to);
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
      auto t = run_in_netns(netns_.at(kClient), [&] { return traffic::tcp_connect(ip, port, 5s); });
      EXPECT_TRUE(t.ok()) << t.error().message();
      if (t.ok()) ms.push_back(std::chrono::duration<double, std::milli>(*t).count());
    }
    return traffic::summarize(ms).p50;
  }

  static void delay(v1::NetemFault& n, std::chrono::milliseconds d) {
    n.mutable_delay()->set_nanos(
        static_cast<int32_t>(std::chrono::nanoseconds(d).count() % 1000000000));
    n.mutable_delay()->set_seconds(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  }
  static void scope_to(v1::NetemFault& n, const std::string& ip) {
    n.mutable_path()->mutable_scope()->add_remote_cidrs(ip + "/32");
  }

  SandboxEnv env_;
  AgentHarness agent_{env_};
  bool started_ = false;
  std::map<std::string, Netns> netns_;
  std::map<std::string, std::string> ips_;
  PodStates baseline_;
};

// The seed's headline scenario: 500 ms +- 100 ms (normal) gateway -> postgres.
TEST_F(AgentNetemTest, LatencyWithNormalJitterMatchesTheRequest) {
  auto control = udp(kServer, 50, 10ms, 500ms);
  ASSERT_TRUE(control.ok()) << control.error().message();
  const double base = traffic::summarize(traffic::to_millis(control->rtts)).mean;
  ASSERT_NO_FATAL_FAILURE(inject("latency", [&](v1::NetemFault& n) {
    delay(n, 500ms);
    n.mutable_jitter()->set_nanos(100'000'000);
    n.set_distribution(v1::DELAY_DISTRIBUTION_NORMAL);
    scope_to(n, ips_.at(kServer));
  }));
  // 250 probes, one every 20 ms: many in flight at once, so each one's delay
  // is drawn independently (netem reorders by due time).
  auto shaped = udp(kServer, 250, 20ms, 1500ms);
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  ASSERT_GE(shaped->received, 240);
  const auto s = traffic::summarize(traffic::to_millis(shaped->rtts));
  const double mean = s.mean - base;
  std::printf(
      "netem 500ms +- 100ms normal: n=%zu mean %.1f ms (unshaped %.2f ms) sd %.1f ms p50 %.1f\n",
      s.n, mean, base, s.stddev, s.p50 - base);
  EXPECT_NEAR(mean, 500.0, 25.0);      // +-5 %
  EXPECT_NEAR(s.stddev, 100.0, 20.0);  // +-20 %
  ASSERT_NO_FATAL_FAILURE(revert("latency"));
  auto after = udp(kServer, 50, 10ms, 500ms);
  ASSERT_TRUE(after.ok());
  EXPECT_LT(traffic::summarize(traffic::to_millis(after->rtts)).p50, base + 20);
}

TEST_F(AgentNetemTest, LossOfThirtyPercent) {
  ASSERT_NO_FATAL_FAILURE(inject("loss", [](v1::NetemFault& n) { n.set_loss(30); }));
  auto r = udp(kServer, 2000, 1ms, 500ms);
  ASSERT_TRUE(r.ok()) << r.error().message();
  std::printf("netem loss 30%%: %d of %d lost (%.1f %%)\n", r->sent - r->received, r->sent,
              100 * r->loss_ratio());
  EXPECT_GE(r->loss_ratio(), 0.25);
  EXPECT_LE(r->loss_ratio(), 0.35);
}

TEST_F(AgentNetemTest, DuplicateAndCorruptAreObserved) {
  ASSERT_NO_FATAL_FAILURE(inject("dup", [](v1::NetemFault& n) { n.set_duplicate(50); }));
  auto dup = udp(kServer, 500, 1ms, 500ms);
  ASSERT_TRUE(dup.ok()) << dup.error().message();
  std::printf("netem duplicate 50%%: %d duplicates of %d\n", dup->duplicates, dup->sent);
  EXPECT_GT(dup->duplicates, dup->sent / 4);
  ASSERT_NO_FATAL_FAILURE(revert("dup"));

  ASSERT_NO_FATAL_FAILURE(inject("corrupt", [](v1::NetemFault& n) { n.set_corrupt(100); }));
  auto bad = udp(kServer, 500, 1ms, 500ms);
  ASSERT_TRUE(bad.ok()) << bad.error().message();
  // A flipped bit breaks a checksum (the receiver drops the datagram) or,
  // where nobody checks it, shows as a payload mismatch.
  const int damaged = bad->sent - bad->received + bad->corrupted;
  std::printf("netem corrupt 100%%: %d of %d damaged\n", damaged, bad->sent);
  EXPECT_GT(damaged, bad->sent / 2);
}

TEST_F(AgentNetemTest, ScopedByPortAndCidr) {
  // Port: only the sink port (9) is delayed; the echo port (7) is not.
  ASSERT_NO_FATAL_FAILURE(inject("port", [](v1::NetemFault& n) {
    delay(n, 200ms);
    auto* p = n.mutable_path()->mutable_scope()->add_remote_ports();
    p->set_first(9);
    p->set_last(9);
  }));
  const double to_sink = connect_ms(kServer, 9);
  const double to_echo = connect_ms(kServer, 7);
  std::printf("scoped by port: connect to :9 %.1f ms, to :7 %.1f ms\n", to_sink, to_echo);
  EXPECT_GE(to_sink, 190.0);
  EXPECT_LT(to_echo, 50.0);
  ASSERT_NO_FATAL_FAILURE(revert("port"));

  // CIDR: only the other pod is delayed.
  ASSERT_NO_FATAL_FAILURE(inject("cidr", [&](v1::NetemFault& n) {
    delay(n, 200ms);
    scope_to(n, ips_.at(kOther));
  }));
  const double to_other = connect_ms(kOther, 7);
  const double to_server = connect_ms(kServer, 7);
  std::printf("scoped by CIDR: connect to other %.1f ms, to server %.1f ms\n", to_other, to_server);
  EXPECT_GE(to_other, 190.0);
  EXPECT_LT(to_server, 50.0);
}

TEST_F(AgentNetemTest, BothDirectionsDoNotDoubleTheRoundTripUnlessAsked) {
  ASSERT_NO_FATAL_FAILURE(inject("both", [&](v1::NetemFault& n) {
    delay(n, 200ms);
    n.mutable_path()->set_direction(v1::DIRECTION_BOTH);
    scope_to(n, ips_.at(kServer));
  }));
  const double once = connect_ms(kServer, 7);
  ASSERT_NO_FATAL_FAILURE(revert("both"));
  ASSERT_NO_FATAL_FAILURE(inject("each", [&](v1::NetemFault& n) {
    delay(n, 200ms);
    n.mutable_path()->set_direction(v1::DIRECTION_BOTH);
    n.set_delay_each_direction(true);
    scope_to(n, ips_.at(kServer));
  }));
  const double twice = connect_ms(kServer, 7);
  std::printf("direction both: round trip %.1f ms split, %.1f ms with delay_each_direction\n", once,
              twice);
  EXPECT_NEAR(once, 200.0, 30.0);
  EXPECT_NEAR(twice, 400.0, 40.0);
}

}  // namespace
}  // namespace nq::testing
