#include "agent/delay/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "nodequake/v1/agent.pb.h"

namespace nq::delay {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

DelayLineSpec spec_500_100() {
  DelayLineSpec s;
  s.netem.delay = 500ms;
  s.netem.jitter = 100ms;
  s.netem.distribution = net::DelayDistribution::kNormal;
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
  EXPECT_TRUE(plan->rolls.redirect);
  EXPECT_EQ(plan->rolls.loss, 0u);
  EXPECT_EQ(plan->dirs, net::kEgress);
  EXPECT_EQ(plan->model.delay, 500ms);
  EXPECT_EQ(plan->heartbeat_period, 10ms);
}

TEST(PlanDelayLine, LossAloneTakesNoFrameToTheEngine) {
  DelayLineSpec s;
  s.netem.loss = 30;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_FALSE(plan->rolls.redirect);
  EXPECT_NEAR(double(plan->rolls.loss) / 4294967295.0, 0.30, 1e-9);
  EXPECT_EQ(plan->rules.config.any_remote, 1u);  // no CIDRs: every peer
}

TEST(PlanDelayLine, WithoutDelayAndLossFramesStillPassTheEngine) {
  auto plan = plan_delay_line(DelayLineSpec{}, "spec");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_TRUE(plan->rolls.redirect);
  EXPECT_EQ(plan->model.delay, 0ms);
}

TEST(PlanDelayLine, IngressIsTheSameRuleMatchedOnTheOtherHook) {
  DelayLineSpec s = spec_500_100();
  s.dirs = net::kIngress;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->dirs, net::kIngress);
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_EGRESS], 0u);
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_INGRESS], 1u);
  // The peer's CIDR is the remote side either way: its address is the
  // source on ingress, which the program looks up in the remote tries.
  EXPECT_EQ(plan->rules.tries[static_cast<size_t>(net::Trie::kRemote4)].size(), 1u);
  EXPECT_EQ(plan->rules.tries[static_cast<size_t>(net::Trie::kLocal4)].size(), 0u);

  s.dirs = net::kBoth;
  plan = plan_delay_line(s, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_EGRESS], 1u);
  EXPECT_EQ(plan->rules.config.candidates[NQ_IDX_INGRESS], 1u);
}

TEST(PlanDelayLine, DuplicateCorruptAndCorrelationsOnNetemsScale) {
  DelayLineSpec s;
  s.netem.duplicate = 30;
  s.netem.duplicate_correlation = 10;
  s.netem.corrupt = 5;
  s.netem.corrupt_correlation = 20;
  s.netem.loss = 1;
  s.netem.loss_correlation = 25;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  const DirectionConfig& r = plan->rolls;
  EXPECT_EQ(r.duplicate, net::percent_to_probability(30));
  EXPECT_EQ(r.duplicate_correlation, net::percent_to_probability(10));
  EXPECT_EQ(r.corrupt, net::percent_to_probability(5));
  EXPECT_EQ(r.corrupt_correlation, net::percent_to_probability(20));
  EXPECT_EQ(r.loss_correlation, net::percent_to_probability(25));
  // Rolls alone, without a delay: done in BPF, no frame goes to the engine.
  EXPECT_FALSE(r.redirect);
  s.netem.delay = 1ms;
  EXPECT_TRUE(plan_delay_line(s, "spec.netem")->rolls.redirect);
  s.netem.delay = 0ms;
  s.netem.loss = 0;
  s.netem.corrupt = 0;
  EXPECT_FALSE(plan_delay_line(s, "spec.netem")->rolls.redirect) << "duplicate alone";
}

TEST(PlanDelayLine, ErrorsNameTheField) {
  DelayLineSpec s = spec_500_100();
  s.netem.loss = 150;
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error().message(), HasSubstr("spec.netem.loss"));

  s = spec_500_100();
  s.netem.delay = 61s;
  EXPECT_THAT(plan_delay_line(s, "spec.netem").error().message(), HasSubstr("spec.netem.delay"));

  s = spec_500_100();
  s.stale_after = 1ms;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.stale_after"));

  s = spec_500_100();
  s.netem.limit = 0;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.limit"));

  s = spec_500_100();
  s.netem.jitter = -1ms;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.jitter"));

  const std::pair<double net::NetemParams::*, const char*> percents[] = {
      {&net::NetemParams::loss_correlation, "x.loss_correlation"},
      {&net::NetemParams::duplicate, "x.duplicate"},
      {&net::NetemParams::duplicate_correlation, "x.duplicate_correlation"},
      {&net::NetemParams::corrupt, "x.corrupt"},
      {&net::NetemParams::corrupt_correlation, "x.corrupt_correlation"},
  };
  for (const auto& [member, field] : percents) {
    s = spec_500_100();
    s.netem.*member = -0.5;
    auto bad = plan_delay_line(s, "x");
    ASSERT_FALSE(bad.ok()) << field;
    EXPECT_EQ(bad.error().status_code(), Code::kInvalidArgument);
    EXPECT_THAT(bad.error().message(), HasSubstr(field));
    s.netem.*member = 100.5;
    EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr(field));
  }

  s = spec_500_100();
  s.dirs = 0;
  EXPECT_THAT(plan_delay_line(s, "x").error().message(), HasSubstr("x.path.direction"));
}

TEST(PlanDelayLine, ScopeErrorsNameThePath) {
  DelayLineSpec s = spec_500_100();
  s.scope.proto = net::Proto::kIcmp;
  s.scope.remote_ports.push_back({80, 80});
  auto plan = plan_delay_line(s, "spec.netem");
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error().message(), HasSubstr("spec.netem.path.scope"));
}

TEST(SpecFromNetem, CarriesEveryDirectionAndRollTheLineDoes) {
  net::NetemParams p;
  p.delay = 100ms;
  p.loss = 10;
  p.loss_correlation = 25;
  p.duplicate = 30;
  p.duplicate_correlation = 5;
  p.corrupt = 2;
  p.corrupt_correlation = 7;
  net::Path path;
  for (uint8_t dirs : {uint8_t(net::kEgress), uint8_t(net::kIngress), uint8_t(net::kBoth)}) {
    path.dirs = dirs;
    const DelayLineSpec spec = spec_from_netem(p, path);
    EXPECT_EQ(spec.dirs, dirs);
    EXPECT_EQ(spec.ifname, "eth0");
    EXPECT_EQ(spec.netem, p);
    EXPECT_TRUE(plan_delay_line(spec, "spec.netem").ok());
  }
}

TEST(PlanDelayLine, RefusesReorderingNamingTheField) {
  net::NetemParams p;
  p.delay = 100ms;
  p.reorder = 25;
  DelayLineSpec spec = spec_from_netem(p, net::Path{});
  auto refused = plan_delay_line(spec, "spec.netem");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(refused.error().message(), HasSubstr("spec.netem.reorder"));
  EXPECT_THAT(refused.error().message(), HasSubstr("sch_netem"));
  spec.netem.reorder = 0;
  spec.netem.gap = 5;
  EXPECT_THAT(plan_delay_line(spec, "spec.netem").error().message(),
              HasSubstr("spec.netem.reorder"));
}

// BOTH means what it means on the netem path: plan_netem() splits the
// delay (half each way, jitter / sqrt 2) unless delay_each_direction, and
// the line gives each direction exactly that leaf.
TEST(SpecFromNetem, BothTakesTheNetemPathsSplitLeaves) {
  nodequake::v1::NetemFault proto;
  proto.mutable_path()->set_direction(nodequake::v1::DIRECTION_BOTH);
  proto.mutable_delay()->set_nanos(100'000'000);
  proto.mutable_jitter()->set_nanos(20'000'000);
  auto shaping = net::plan_netem(proto, "spec.netem");
  ASSERT_TRUE(shaping.ok()) << shaping.error().message();
  auto spec =
      spec_from_netem_leaves(shaping->egress, shaping->ingress, shaping->path, "spec.netem");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->dirs, net::kBoth);
  EXPECT_EQ(spec->netem.delay, 50ms);
  EXPECT_NEAR(double(spec->netem.jitter.count()), 20e6 / std::sqrt(2.0), 1.0);

  proto.set_delay_each_direction(true);
  shaping = net::plan_netem(proto, "spec.netem");
  ASSERT_TRUE(shaping.ok());
  spec = spec_from_netem_leaves(shaping->egress, shaping->ingress, shaping->path, "spec.netem");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->netem.delay, 100ms);
}

TEST(SpecFromNetem, FromTakesTheIngressLeaf) {
  nodequake::v1::NetemFault proto;
  proto.mutable_path()->set_direction(nodequake::v1::DIRECTION_FROM);
  proto.mutable_delay()->set_nanos(100'000'000);
  proto.set_duplicate(30);
  auto shaping = net::plan_netem(proto, "spec.netem");
  ASSERT_TRUE(shaping.ok()) << shaping.error().message();
  ASSERT_FALSE(shaping->egress);
  auto spec =
      spec_from_netem_leaves(shaping->egress, shaping->ingress, shaping->path, "spec.netem");
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  EXPECT_EQ(spec->dirs, net::kIngress);
  EXPECT_EQ(spec->netem.delay, 100ms);
  EXPECT_EQ(spec->netem.duplicate, 30);
}

TEST(SpecFromNetem, LeavesThatAreNotNetemNameTheField) {
  std::optional<net::LeafSpec> tbf = net::TbfParams{};
  auto r = spec_from_netem_leaves(tbf, std::nullopt, net::Path{}, "spec.netem");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kInvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("spec.netem"));
  r = spec_from_netem_leaves(std::nullopt, std::nullopt, net::Path{}, "spec.netem");
  EXPECT_FALSE(r.ok());
  net::NetemParams a, b;
  a.delay = 10ms;
  b.delay = 20ms;
  r = spec_from_netem_leaves(a, b, net::Path{"eth0", net::kBoth, {}}, "spec.netem");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message(), HasSubstr("differ"));
}

}  // namespace
}  // namespace nq::delay
