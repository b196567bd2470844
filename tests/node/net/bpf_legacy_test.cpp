// The clsact fallback for kernels without TCX, forced here: filters at the
// nodequake priority that outlive their program object, and their removal.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_sched.h>

#include "agent/net/netlink.h"
#include "tests/node/net/bpf_env.h"

namespace nq::testing {
namespace {

using net::kBoth;
using net::NetfaultLoadOptions;
using net::NetfaultProgram;
using net::RuleSlots;

constexpr const char* kB = NetnsPair::kIpB;
constexpr uint32_t kEgressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);
constexpr uint32_t kIngressParent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);

NetfaultLoadOptions legacy_options() {
  NetfaultLoadOptions o;
  o.attach = NetfaultLoadOptions::Attach::kLegacyTc;
  return o;
}

class NetfaultLegacy : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto env = BpfEnv::create(legacy_options());
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
  }
  void expect_filters(bool present) {
    for (auto point : {BPF_TC_EGRESS, BPF_TC_INGRESS}) {
      auto r = filter_present(env_->a(), env_->eth0(), point);
      ASSERT_TRUE(r.ok()) << r.error().message();
      EXPECT_EQ(*r, present) << (point == BPF_TC_EGRESS ? "egress" : "ingress");
    }
  }
  std::unique_ptr<BpfEnv> env_;
};

TEST_F(NetfaultLegacy, FiltersOutliveTheProgramObjectUntilRemoveLegacy) {
  ASSERT_TRUE(env_->attach().ok());
  ASSERT_EQ(env_->prog().mode(), NetfaultProgram::AttachMode::kLegacyTc);
  const auto attached = env_->prog().legacy();
  ASSERT_EQ(attached.size(), 2u);
  for (const auto& a : attached) {
    EXPECT_TRUE(a.parent == kEgressParent || a.parent == kIngressParent);
    EXPECT_EQ(a.priority, NetfaultProgram::kLegacyPriority);
    EXPECT_EQ(a.handle, NetfaultProgram::kLegacyHandle);
    EXPECT_TRUE(a.clsact_created);
    EXPECT_EQ(a.ifindex, env_->eth0());
  }
  EXPECT_NE(attached[0].parent, attached[1].parent);
  expect_filters(true);

  RuleSlots slots;
  slots[0] = partition(kBoth, {"10.77.0.2/32"});
  ASSERT_TRUE(env_->apply(slots).ok());
  EXPECT_FALSE(connect_from(env_->a(), kB, 7, kBlockedTimeout).ok());

  // The agent "dies": the filters keep the program and its maps alive.
  env_->drop_prog();
  expect_filters(true);
  EXPECT_FALSE(connect_from(env_->a(), kB, 7, kBlockedTimeout).ok());

  // A later incarnation reconciles from the journaled attachments.
  Status st = run_in_netns(env_->a(), [&] { return NetfaultProgram::remove_legacy(attached); });
  ASSERT_TRUE(st.ok()) << st.error().message();
  expect_filters(false);
  auto clsact = clsact_present(env_->a(), env_->eth0());
  ASSERT_TRUE(clsact.ok()) << clsact.error().message();
  EXPECT_FALSE(*clsact) << "the clsact qdisc we created was left behind";
  auto c = connect_from(env_->a(), kB, 7);
  EXPECT_TRUE(c.ok()) << c.error().message();

  // Reconciling twice is harmless.
  st = run_in_netns(env_->a(), [&] { return NetfaultProgram::remove_legacy(attached); });
  EXPECT_TRUE(st.ok()) << st.error().message();
}

TEST_F(NetfaultLegacy, DetachKeepsAClsactThatWasThereBefore) {
  Status st = run_in_netns(env_->a(), [&]() -> Status {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = env_->eth0();
    hook.attach_point = BPF_TC_INGRESS;
    if (int rc = bpf_tc_hook_create(&hook); rc < 0) return Error::from_errno(-rc, "clsact");
    return ok();
  });
  ASSERT_TRUE(st.ok()) << st.error().message();
  ASSERT_TRUE(env_->attach().ok());
  for (const auto& a : env_->prog().legacy()) EXPECT_FALSE(a.clsact_created);
  expect_filters(true);

  st = env_->detach();
  ASSERT_TRUE(st.ok()) << st.error().message();
  expect_filters(false);
  auto clsact = clsact_present(env_->a(), env_->eth0());
  ASSERT_TRUE(clsact.ok()) << clsact.error().message();
  EXPECT_TRUE(*clsact) << "removed a clsact qdisc that was not ours";
  EXPECT_TRUE(env_->detach().ok());
}

TEST_F(NetfaultLegacy, AFilterAtOurPriorityIsNotTakenOver) {
  ASSERT_TRUE(env_->attach().ok());
  RuleSlots slots;
  slots[0] = partition(kBoth, {"10.77.0.2/32"});
  ASSERT_TRUE(env_->apply(slots).ok());

  auto second = NetfaultProgram::load(legacy_options());
  ASSERT_TRUE(second.ok()) << second.error().message();
  Status st = run_in_netns(env_->a(), [&] { return second->attach(env_->eth0()); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().sys_errno(), EEXIST);
  EXPECT_NE(st.error().message().find("remove_legacy"), std::string::npos) << st.error().message();
  EXPECT_EQ(second->mode(), NetfaultProgram::AttachMode::kNone);
  // The failed attach left the first program's filters and partition alone.
  expect_filters(true);
  EXPECT_FALSE(connect_from(env_->a(), kB, 7, kBlockedTimeout).ok());
  ASSERT_TRUE(env_->detach().ok());
  EXPECT_TRUE(connect_from(env_->a(), kB, 7).ok());
}

}  // namespace
}  // namespace nq::testing
