// The netem engine: validation of NetemFault.engine, the choice between
// sch_netem and the eBPF delay line as a pure function of the node's
// capabilities and the spec, and the refusals that name the field and the
// engine.
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>

#include "agent/core/spec.h"
#include "agent/core/spec_engine.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;
using google::protobuf::util::TimeUtil;
using namespace std::chrono_literals;

v1::ApplyRequest delay_request(v1::NetemEngine engine, int delay_ms = 100) {
  v1::ApplyRequest req;
  req.set_id("d1");
  req.mutable_target()->mutable_pod()->set_namespace_("llm-marketplace");
  req.mutable_target()->mutable_pod()->set_name("graphql-gateway-0");
  auto* n = req.mutable_spec()->mutable_netem();
  n->mutable_path()->set_direction(v1::DIRECTION_TO);
  n->mutable_path()->mutable_scope()->add_remote_cidrs("10.213.0.3/32");
  *n->mutable_delay() = TimeUtil::MillisecondsToDuration(delay_ms);
  n->set_engine(engine);
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(60);
  return req;
}

NetworkFault validated(const v1::ApplyRequest& req) {
  auto v = validate_apply(req, Limits{});
  EXPECT_TRUE(v.ok()) << v.error().message();
  return std::get<NetworkFault>(v->fault);
}

// This project's machines: no sch_netem; TCX, TAP and sched_cls work.
Capabilities no_netem() {
  return Capabilities({{"sch_netem", false, "qdisc kind unknown to this kernel"},
                       {"sch_htb", true, "t"},
                       {"bpf_prog_sched_cls", true, "t"},
                       {"bpf_tcx", true, "t"},
                       {"tun", true, "t"}});
}
// Debian's stock 6.1: netem, but no TCX links.
Capabilities stock_61() {
  return Capabilities({{"sch_netem", true, "t"},
                       {"sch_htb", true, "t"},
                       {"bpf_prog_sched_cls", true, "t"},
                       {"bpf_tcx", false, "kernel older than 6.6 has no TCX links"},
                       {"tun", true, "t"}});
}

void expect_error(const Result<EngineChoice>& r, Code code,
                  const std::vector<std::string>& needles) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), code) << r.error().message();
  for (const auto& n : needles)
    EXPECT_NE(r.error().message().find(n), std::string::npos)
        << "'" << n << "' not in: " << r.error().message();
}

TEST(NetemEngine, ValidationNamesTheField) {
  auto req = delay_request(static_cast<v1::NetemEngine>(7));
  auto v = validate_apply(req, Limits{});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(v.error().message().find("spec.netem.engine"), std::string::npos)
      << v.error().message();
  EXPECT_EQ(validated(delay_request(v1::NETEM_ENGINE_AUTO)).engine, NetemEngine::kAuto);
  EXPECT_EQ(validated(delay_request(v1::NETEM_ENGINE_NETEM)).engine, NetemEngine::kNetem);
  EXPECT_EQ(validated(delay_request(v1::NETEM_ENGINE_EBPF)).engine, NetemEngine::kEbpf);
}

TEST(NetemEngine, AvailabilityFromCapabilities) {
  const EngineAvailability a = engine_availability(no_netem());
  EXPECT_FALSE(a.netem);
  EXPECT_NE(a.netem_detail.find("sch_netem"), std::string::npos) << a.netem_detail;
  EXPECT_TRUE(a.ebpf);
  const EngineAvailability b = engine_availability(stock_61());
  EXPECT_TRUE(b.netem);
  EXPECT_FALSE(b.ebpf);
  EXPECT_NE(b.ebpf_detail.find("bpf_tcx"), std::string::npos) << b.ebpf_detail;
  // Never probed counts as missing.
  EXPECT_FALSE(engine_availability(Capabilities({})).ebpf);

  EXPECT_EQ(node_engine(a).name, "ebpf");
  EXPECT_NE(node_engine(a).reason.find("lacks sch_netem"), std::string::npos);
  EXPECT_EQ(node_engine(b).name, "netem");
  const NodeEngine none = node_engine(engine_availability(Capabilities({})));
  EXPECT_EQ(none.name, "");
  EXPECT_NE(none.reason.find("delay line"), std::string::npos) << none.reason;
}

TEST(NetemEngine, AutoIsNetemWhereTheKernelHasIt) {
  NetworkFault f = validated(delay_request(v1::NETEM_ENGINE_AUTO));
  ASSERT_TRUE(resolve_engine(f, engine_availability(stock_61())).ok());
  EXPECT_EQ(f.engine, NetemEngine::kNetem);
  EXPECT_EQ(f.engine_reason, "kernel has sch_netem");
  EXPECT_FALSE(f.delay_line);
  // Needs what the qdisc path needs, not the delay line's.
  bool netem = false, tcx = false;
  for (const auto& [cap, what] : required_capabilities(f)) {
    netem = netem || cap == "sch_netem";
    tcx = tcx || cap == "bpf_tcx";
  }
  EXPECT_TRUE(netem);
  EXPECT_FALSE(tcx);
}

TEST(NetemEngine, AutoIsTheDelayLineWithoutNetem) {
  NetworkFault f = validated(delay_request(v1::NETEM_ENGINE_AUTO));
  ASSERT_TRUE(resolve_engine(f, engine_availability(no_netem())).ok());
  EXPECT_EQ(f.engine, NetemEngine::kEbpf);
  EXPECT_EQ(f.engine_reason, "kernel lacks sch_netem");
  ASSERT_TRUE(f.delay_line);
  EXPECT_EQ(f.delay_line->netem.delay, 100ms);
  EXPECT_EQ(f.delay_line->ifname, "eth0");
  ASSERT_EQ(f.delay_line->scope.remote.size(), 1u);
  std::vector<std::string> caps;
  for (const auto& [cap, what] : required_capabilities(f)) caps.push_back(cap);
  EXPECT_EQ(caps, (std::vector<std::string>{"bpf_prog_sched_cls", "bpf_tcx", "tun"}));
  // And those are satisfied on such a node.
  for (const auto& [cap, what] : required_capabilities(f))
    EXPECT_TRUE(no_netem().require(cap, what).ok()) << cap;
}

TEST(NetemEngine, ForcedEngines) {
  NetworkFault netem = validated(delay_request(v1::NETEM_ENGINE_NETEM));
  expect_error(choose_engine(netem, engine_availability(no_netem())), Code::kFailedPrecondition,
               {"sch_netem", "spec.netem.engine"});

  NetworkFault ebpf = validated(delay_request(v1::NETEM_ENGINE_EBPF));
  auto c = choose_engine(ebpf, engine_availability(no_netem()));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->engine, NetemEngine::kEbpf);
  EXPECT_NE(c->reason.find("requested"), std::string::npos);
  // ebpf also where netem exists (the vm tier's side-by-side), but not
  // without TCX: a tc filter would outlive the agent.
  expect_error(choose_engine(ebpf, engine_availability(stock_61())), Code::kFailedPrecondition,
               {"bpf_tcx", "spec.netem.engine ebpf"});
}

TEST(NetemEngine, WhatTheDelayLineCannotDoNamesFieldAndEngine) {
  for (auto engine : {v1::NETEM_ENGINE_AUTO, v1::NETEM_ENGINE_EBPF}) {
    auto req = delay_request(engine);
    req.mutable_spec()->mutable_netem()->set_reorder(25);
    NetworkFault f = validated(req);
    const std::string why = engine == v1::NETEM_ENGINE_AUTO ? "engine auto" : "engine: ebpf";
    SCOPED_TRACE(why);
    expect_error(choose_engine(f, engine_availability(no_netem())), Code::kFailedPrecondition,
                 {"spec.netem.reorder", why});
    // Where netem exists, auto takes it and the spec is fine.
    if (engine == v1::NETEM_ENGINE_AUTO) {
      EXPECT_TRUE(choose_engine(f, engine_availability(stock_61())).ok());
    }
  }
}

// Duplicate, corrupt, correlated loss and DIRECTION_BOTH are the line's
// now; BOTH arrives split like the netem path's leaves.
TEST(NetemEngine, TheLineTakesDuplicateCorruptCorrelatedLossAndBoth) {
  auto req = delay_request(v1::NETEM_ENGINE_AUTO);
  auto* n = req.mutable_spec()->mutable_netem();
  n->set_duplicate(30);
  n->set_corrupt(5);
  n->set_loss(10);
  n->set_loss_correlation(25);
  n->mutable_path()->set_direction(v1::DIRECTION_BOTH);
  NetworkFault f = validated(req);
  ASSERT_TRUE(resolve_engine(f, engine_availability(no_netem())).ok());
  EXPECT_EQ(f.engine, NetemEngine::kEbpf);
  ASSERT_TRUE(f.delay_line);
  EXPECT_EQ(f.delay_line->dirs, net::kBoth);
  EXPECT_EQ(f.delay_line->netem.delay, 50ms);  // half the round trip each way
  EXPECT_EQ(f.delay_line->netem.duplicate, 30);
  EXPECT_EQ(f.delay_line->netem.corrupt, 5);
  EXPECT_EQ(f.delay_line->netem.loss_correlation, 25);
}

TEST(NetemEngine, NeitherEngine) {
  NetworkFault f = validated(delay_request(v1::NETEM_ENGINE_AUTO));
  Capabilities caps({{"sch_netem", false, "unknown qdisc"},
                     {"bpf_prog_sched_cls", true, "t"},
                     {"bpf_tcx", false, "EINVAL"}});
  expect_error(choose_engine(f, engine_availability(caps)), Code::kFailedPrecondition,
               {"sch_netem", "delay line", "bpf_tcx"});
}

TEST(NetemEngine, OtherKindsAreLeftAlone) {
  NetworkFault f;
  f.kind = FaultKind::kPartition;
  ASSERT_TRUE(resolve_engine(f, engine_availability(Capabilities({}))).ok());
  EXPECT_FALSE(f.delay_line);
}

}  // namespace
}  // namespace nq::core
