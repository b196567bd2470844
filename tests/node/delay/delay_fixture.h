// The fixture of the delay-line node tests: a namespace pair of the test's
// own (DelayEnv) and a line started on a's eth0 from a spec. Skips, with
// the reason, where the line cannot run.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "agent/delay/delay_line.h"
#include "common/cidr.h"
#include "common/netns.h"
#include "common/traffic.h"
#include "tests/node/delay/delay_env.h"

namespace nq::testing {

inline Cidr cidr(const std::string& text) {
  auto c = parse_cidr(text);
  EXPECT_TRUE(c.ok()) << text;
  return *c;
}

class DelayLineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = delay_line_missing()) GTEST_SKIP() << *why;
    auto env = DelayEnv::create();
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
  }

  // A line on a's eth0 scoped to `remote` (b's first address by default).
  std::unique_ptr<delay::DelayLine> start(delay::DelayLineSpec spec,
                                          const std::string& remote = "10.77.0.2/32") {
    spec.scope.remote = {cidr(remote)};
    auto plan = delay::plan_delay_line(spec, "spec");
    EXPECT_TRUE(plan.ok()) << plan.error().message();
    if (!plan.ok()) return nullptr;
    auto line = delay::DelayLine::start(env_->a(), *plan);
    EXPECT_TRUE(line.ok()) << line.error().message();
    return line.ok() ? std::move(*line) : nullptr;
  }

  // With a line scoped to b's second address: 50 UDP probes to b's first
  // (out of scope) and 10 TCP echoes to the second (in scope; TCP because
  // b's UDP echo answers from its primary address, which a socket
  // connected to the second one would not take).
  struct Scoped {
    int unmatched_received = 0;
    traffic::Summary unmatched;  // ms
    traffic::Summary matched;    // ms
    std::string unmatched_stalls;
  };
  void probe_scoped(Scoped& out) {
    auto other = watched_udp_probes(env_->a(), NetnsPair::kIpB, 50, std::chrono::milliseconds(2),
                                    std::chrono::milliseconds(200), 25);
    ASSERT_TRUE(other.ok()) << other.error().message();
    auto matched = run_in_netns(env_->a(), [] {
      return traffic::tcp_echo_rtt(DelayEnv::kIpB2, 7, 10, std::chrono::seconds(2));
    });
    ASSERT_TRUE(matched.ok()) << matched.error().message();
    // Counted over every probe; the latencies over those no stall of the
    // machine disturbed (see WatchedProbes).
    out.unmatched_received = other->all.received;
    out.unmatched = other->undisturbed_ms();
    out.unmatched_stalls = other->describe();
    out.matched = traffic::summarize(traffic::to_millis(*matched));
  }

  std::unique_ptr<DelayEnv> env_;
};

}  // namespace nq::testing
