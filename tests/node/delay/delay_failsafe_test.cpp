// Fail-safety of the delay line, with the line held by another process
// (nq-delayline-hold): kill -9 takes the links and the TAP with it, a
// stopped holder is bypassed through the heartbeat. Each test runs for an
// egress (TO) line and an ingress (FROM) one: for the latter the UDP echo
// answers are what is delayed.
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/node/delay/delay_fixture.h"

namespace nq::testing {
namespace {

constexpr const char* kB = NetnsPair::kIpB;
// The bound for both.
constexpr auto kBypassBound = 250ms;

class DelayFailSafe : public DelayLineFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    DelayLineFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto held = HeldLine::start(env_->pair().path_a(), {"--delay", "100ms", "--remote",
                                                        "10.77.0.2/32", "--direction", GetParam()});
    ASSERT_TRUE(held.ok()) << held.error().message();
    held_ = std::move(*held);
  }

  void expect_delayed() {
    auto r = udp_probes(env_->a(), kB, 5, 5ms, 300ms);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_EQ(r->received, 5);
    EXPECT_GE(rtt_ms(*r).min, 99.0) << "the line is not in effect";
  }

  // The pod interface's hook the line is attached to.
  uint32_t hook_programs() { return tcx_programs(env_->a(), "eth0", GetParam() == "to").value(); }

  std::unique_ptr<HeldLine> held_;
};

TEST_P(DelayFailSafe, KillNineUndelaysWithin250msAndLeavesNothing) {
  expect_delayed();
  const std::string tap = held_->tap_name();
  const auto t0 = std::chrono::steady_clock::now();
  held_->kill();  // SIGKILL: no destructor runs
  auto took = time_until_fast(env_->a(), kB, t0, 20ms, 3s);
  ASSERT_TRUE(took.ok()) << "traffic still delayed 3 s after kill -9";
  std::printf("%s kill -9: undelayed after %.1f ms\n", GetParam().c_str(), took->count() / 1e6);
  EXPECT_LT(*took, kBypassBound);
  EXPECT_EQ(hook_programs(), 0u) << "the interface's link left behind";
  EXPECT_EQ(link_exists(env_->a(), tap).value(), false) << "TAP left behind";
}

TEST_P(DelayFailSafe, StoppedHolderIsBypassedWithin250msAndResumes) {
  expect_delayed();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(held_->signal(SIGSTOP).ok());
  auto took = time_until_fast(env_->a(), kB, t0, 20ms, 3s);
  ASSERT_TRUE(took.ok()) << "traffic still delayed 3 s after SIGSTOP";
  std::printf("%s SIGSTOP: bypassed after %.1f ms\n", GetParam().c_str(), took->count() / 1e6);
  EXPECT_LT(*took, kBypassBound);
  // Still attached, only bypassed: the heartbeat resumes with the process.
  EXPECT_EQ(hook_programs(), 1u);
  ASSERT_TRUE(held_->signal(SIGCONT).ok());
  std::this_thread::sleep_for(50ms);
  expect_delayed();
}

TEST_P(DelayFailSafe, SigtermStopsGracefully) {
  expect_delayed();
  const std::string tap = held_->tap_name();
  ASSERT_TRUE(held_->signal(SIGTERM).ok());
  auto status = held_->wait();
  ASSERT_TRUE(status.ok()) << status.error().message();
  EXPECT_EQ(*status, 0);
  EXPECT_EQ(hook_programs(), 0u);
  EXPECT_EQ(link_exists(env_->a(), tap).value(), false);
}

INSTANTIATE_TEST_SUITE_P(Direction, DelayFailSafe, ::testing::Values("to", "from"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace nq::testing
