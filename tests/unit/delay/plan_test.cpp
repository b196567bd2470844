#include "agent/delay/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nq::delay {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

DelayLineSpec spec_500_100() {
  DelayLineSpec s;
  s.delay = 500ms;
  s.jitter = 100ms;
  s.distribution = net::DelayDistribution::kNormal;
  auto c = parse_cidr("10.213.0.3/32");
  EXPECT_TRUE(c.ok());
  s.scope.remote.push_back(*c);
  return s;
}

TEST(PlanDelayLine, CompilesTheScopeAsOneEgressRule) {
  auto plan = plan_delay_line(spec_500_100(), "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->rules.config.active, 1u);
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_EGRESS], 1u);
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_INGRESS], 0u);
  EXPECT_EQ(plan->rules.config.any_remote, 0u);
  EXPECT_EQ(plan->rules.tries[static_cast<size_t>(net::Trie::kRemote4)].size(), 1u);
  EXPECT_TRUE(plan->redirect);
  EXPECT_EQ(plan->loss, 0u);
  EXPECT_EQ(plan->model.delay, 500ms);
  EXPECT_EQ(plan->heartbeat_period, 10ms);
}

TEST(PlanDelayLine, LossAloneTakesNoFrameToTheEngine) {
  DelayLineSpec s;
  s.loss = 30;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_FALSE(plan->redirect);
  EXPECT_NEAR(double(plan->loss) / 4294967295.0, 0.30, 1e-9);
  EXPECT_EQ(plan->rules.config.any_remote, 1u);  // no CIDRs: every peer
}

TEST(PlanDelayLine, WithoutDelayAndLossFramesStillPassTheEngine) {
  auto plan = plan_delay_line(DelayLineSpec{}, "spec");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_TRUE(plan->redirect);
  EXPECT_EQ(plan->model.delay, 0ms);
}

TEST(PlanDelayLine, ErrorsNameTheField) {
  DelayLineSpec s = spec_500_100();
  s.loss = 150;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error().message(), HasSubstr("spec.netem.loss"));

  s = spec_500_100();
  s.delay = 61s;
  EXPECT_THAT(plan_delay_line(s, "spec.netem").error().message(), HasSubstr("spec.netem.delay"));

  s = spec_500_100();
  s.stale_after = 1ms;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.stale_after"));

  s = spec_500_100();
  s.limit = 0;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.limit"));

  s = spec_500_100();
  s.jitter = -1ms;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.jitter"));
}

TEST(PlanDelayLine, ScopeErrorsNameThePath) {
  DelayLineSpec s = spec_500_100();
  s.scope.proto = net::Proto::kIcmp;
  s.scope.remote_ports.push_back({80, 80});
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error().message(), HasSubstr("spec.netem.path.scope"));
}

TEST(SpecFromNetem, RefusesWhatTheLineDoesNotDoNamingTheField) {
  net::NetemParams p;
  p.delay = 100ms;
  net::Path path;
  auto spec = spec_from_netem(p, path, "spec.netem");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->delay, 100ms);
  EXPECT_EQ(spec->ifname, "eth0");

  p.duplicate = 1;
  auto refused = spec_from_netem(p, path, "spec.netem");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(refused.error().message(), HasSubstr("spec.netem.duplicate"));

  p.duplicate = 0;
  path.dirs = net::kBoth;
  refused = spec_from_netem(p, path, "spec.netem");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("spec.netem.path.direction"));
}

}  // namespace
}  // namespace nq::delay
