// SHAPE rules: egress packets classified into an HTB class by skb->priority,
// ingress packets redirected through an ifb. Each test runs attached both
// ways: as the kernel prefers (TCX where it has it) and as clsact filters,
// whose ifb hop is a second filter with a mirred action.
#include <gtest/gtest.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/tc.h>
#include <unistd.h>

#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "tests/node/net/bpf_env.h"

namespace nq::testing {
namespace {

using net::kEgress;
using net::kIngress;
using net::NetfaultLoadOptions;
using net::NetfaultProgram;
using net::NetRule;
using net::RuleSlots;
using Attach = NetfaultLoadOptions::Attach;

constexpr const char* kA = NetnsPair::kIpA;
constexpr const char* kB = NetnsPair::kIpB;
constexpr uint32_t kClass = TC_HANDLE(1, 0x10);

NetRule shape(uint8_t dirs, uint32_t egress_classid, uint32_t ingress_classid) {
  NetRule r;
  r.kind = NetRule::Kind::kShape;
  r.dirs = dirs;
  r.scope.remote = {*parse_cidr("10.77.0.2/32")};
  r.egress_classid = egress_classid;
  r.ingress_classid = ingress_classid;
  return r;
}

// HTB root 1: (unclassified traffic: direct) with one leaf class 1:10, like
// the agent's shaping tree, built with libnl inside `ns`.
Status add_htb(const Netns& ns, int ifindex) {
  return run_in_netns(ns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    net::QdiscPtr q(rtnl_qdisc_alloc());
    rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
    rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
    rtnl_tc_set_handle(TC_CAST(q.get()), TC_HANDLE(1, 0));
    if (int rc = rtnl_tc_set_kind(TC_CAST(q.get()), "htb"); rc < 0)
      return Error::from_netlink(rc, "htb kind");
    rtnl_htb_set_defcls(q.get(), 0);
    if (int rc = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
      return Error::from_netlink(rc, "add htb qdisc");
    net::ClassPtr c(rtnl_class_alloc());
    rtnl_tc_set_ifindex(TC_CAST(c.get()), ifindex);
    rtnl_tc_set_parent(TC_CAST(c.get()), TC_HANDLE(1, 0));
    rtnl_tc_set_handle(TC_CAST(c.get()), kClass);
    if (int rc = rtnl_tc_set_kind(TC_CAST(c.get()), "htb"); rc < 0)
      return Error::from_netlink(rc, "htb class kind");
    rtnl_htb_set_rate(c.get(), 12'500'000);  // 100 Mbit/s: counts, does not slow
    rtnl_htb_set_ceil(c.get(), 12'500'000);
    if (int rc = rtnl_class_add(sock.get(), c.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
      return Error::from_netlink(rc, "add htb class");
    return ok();
  });
}

Result<uint64_t> class_packets(const Netns& ns, int ifindex, uint32_t handle) {
  return run_in_netns(ns, [&]() -> Result<uint64_t> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    nl_cache* raw = nullptr;
    if (int rc = rtnl_class_alloc_cache(sock.get(), ifindex, &raw); rc < 0)
      return Error::from_netlink(rc, "dump classes");
    net::CachePtr cache(raw);
    net::ClassPtr c(rtnl_class_get(raw, ifindex, handle));
    if (!c) return Error::not_found("htb class");
    return rtnl_tc_get_stat(TC_CAST(c.get()), RTNL_TC_PACKETS);
  });
}

Result<uint64_t> tx_packets(const Netns& ns, const std::string& dev) {
  return run_in_netns(ns, [&]() -> Result<uint64_t> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    rtnl_link* raw = nullptr;
    if (int rc = rtnl_link_get_kernel(sock.get(), 0, dev.c_str(), &raw); rc < 0)
      return Error::from_netlink(rc, "get link " + dev);
    net::LinkPtr link(raw);
    return rtnl_link_get_stat(raw, RTNL_LINK_TX_PACKETS);
  });
}

// Traffic that crosses a's eth0 both ways.
void exchange(const Netns& from, const char* to) {
  auto rtt = run_in_netns(from, [&] { return traffic::tcp_echo_rtt(to, 7, 20, 2s); });
  ASSERT_TRUE(rtt.ok()) << rtt.error().message();
  EXPECT_EQ(rtt->size(), 20u);
}

std::string ifb_name(const char* tag) {
  return std::string("nqifb") + tag + std::to_string(::getpid() % 100000);
}

class NetfaultShape : public ::testing::TestWithParam<Attach> {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    NetfaultLoadOptions options;
    options.attach = GetParam();
    auto env = BpfEnv::create(options);
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
    Status st = env_->attach();
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  std::unique_ptr<BpfEnv> env_;
};

INSTANTIATE_TEST_SUITE_P(Attach, NetfaultShape, ::testing::Values(Attach::kAuto, Attach::kLegacyTc),
                         [](const ::testing::TestParamInfo<Attach>& param) {
                           return param.param == Attach::kAuto ? "Auto" : "Clsact";
                         });

TEST_P(NetfaultShape, EgressPriorityPutsPacketsIntoTheHtbClass) {
  Status st = add_htb(env_->a(), env_->eth0());
  ASSERT_TRUE(st.ok()) << st.error().message();
  const auto packets = [&] { return class_packets(env_->a(), env_->eth0(), kClass); };

  exchange(env_->a(), kB);
  auto before = packets();
  ASSERT_TRUE(before.ok()) << before.error().message();
  EXPECT_EQ(*before, 0u) << "unclassified traffic must not reach 1:10";

  RuleSlots slots;
  slots[2] = shape(kEgress, kClass, 0);
  ASSERT_TRUE(env_->apply(slots).ok());
  exchange(env_->a(), kB);
  auto stats = env_->prog().stats(2);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_GE(stats->shaped, 20u);
  // Counted after the rule went: a late segment of the exchange (a delayed
  // ACK on a slow machine) may still be classified before that.
  ASSERT_TRUE(env_->apply(RuleSlots{}).ok());
  auto during = packets();
  ASSERT_TRUE(during.ok()) << during.error().message();
  EXPECT_GE(*during, 20u);

  exchange(env_->a(), kB);
  auto after = packets();
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(*after, *during) << "packets still classified after the rule went";
}

TEST_P(NetfaultShape, IngressGoesThroughTheIfbAndBack) {
  const std::string ifb = ifb_name("");
  auto ifb_index = add_ifb(env_->a(), ifb);
  ASSERT_TRUE(ifb_index.ok()) << ifb_index.error().message();
  const auto ifb_tx = [&] { return tx_packets(env_->a(), ifb); };

  // A rule before the ifb exists: packets are classified but stay put.
  RuleSlots slots;
  slots[0] = shape(kIngress, 0, TC_HANDLE(1, 0x20));
  ASSERT_TRUE(env_->apply(slots, 0).ok());
  exchange(env_->b(), kA);
  auto idle = ifb_tx();
  ASSERT_TRUE(idle.ok()) << idle.error().message();

  // With the ifb: ingress packets leave through it (its tx counter), and
  // come back into a, since the exchange still completes.
  ASSERT_TRUE(env_->apply(slots, uint32_t(*ifb_index)).ok());
  exchange(env_->b(), kA);
  // Counted once the rule is gone: a late segment of the exchange (a
  // delayed ACK on a slow machine) may still be redirected before that.
  ASSERT_TRUE(env_->apply(RuleSlots{}, uint32_t(*ifb_index)).ok());
  auto during = ifb_tx();
  ASSERT_TRUE(during.ok()) << during.error().message();
  EXPECT_GE(*during - *idle, 20u);

  exchange(env_->b(), kA);
  auto after = ifb_tx();
  ASSERT_TRUE(after.ok()) << after.error().message();
  EXPECT_EQ(*after, *during) << "redirects continued after the rule went";
}

TEST_P(NetfaultShape, PartitionWinsOverShaping) {
  RuleSlots slots;
  slots[0] = shape(kEgress, kClass, 0);  // lower slot, still loses
  slots[1] = partition(kEgress, {"10.77.0.2/32"});
  ASSERT_TRUE(env_->apply(slots).ok());
  auto r = connect_from(env_->a(), kB, 7, kBlockedTimeout);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kDeadlineExceeded);
  auto stats = env_->prog().stats(0);
  ASSERT_TRUE(stats.ok()) << stats.error().message();
  EXPECT_EQ(stats->shaped, 0u);
}

// The clsact way's ifb filter: there while the rules name an ifb, leading
// to that ifb, and removed by remove_legacy() through the journaled ingress
// entry, as after a crash.
TEST(NetfaultShapeClsact, TheIfbFilterFollowsTheRulesAndGoesWithTheIngressEntry) {
  NQ_REQUIRE_ROOT();
  NetfaultLoadOptions options;
  options.attach = Attach::kLegacyTc;
  auto created = BpfEnv::create(options);
  ASSERT_TRUE(created.ok()) << created.error().message();
  BpfEnv& env = **created;
  const auto ifb_filter = [&]() -> bool {
    auto r =
        filter_present(env.a(), env.eth0(), BPF_TC_INGRESS, NetfaultProgram::kLegacyIfbPriority);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() && *r;
  };
  auto ifb_a = add_ifb(env.a(), ifb_name("a"));
  ASSERT_TRUE(ifb_a.ok()) << ifb_a.error().message();
  auto ifb_b = add_ifb(env.a(), ifb_name("b"));
  ASSERT_TRUE(ifb_b.ok()) << ifb_b.error().message();
  const auto tx = [&](const std::string& dev) {
    auto r = tx_packets(env.a(), dev);
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() ? *r : 0;
  };

  // Rules that name an ifb before the attach: the attach brings the filter.
  RuleSlots slots;
  slots[0] = shape(kIngress, 0, TC_HANDLE(1, 0x20));
  ASSERT_TRUE(env.apply(slots, uint32_t(*ifb_a)).ok());
  EXPECT_FALSE(ifb_filter());
  Status st = env.attach();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_TRUE(ifb_filter());
  const uint64_t a0 = tx(ifb_name("a")), b0 = tx(ifb_name("b"));
  exchange(env.b(), kA);
  EXPECT_EQ(tx(ifb_name("b")), b0);

  // Another ifb: the filter follows. a's count is taken after the switch: a
  // late segment of the exchange (a delayed ACK on a slow machine) may still
  // have gone to a before it.
  ASSERT_TRUE(env.apply(slots, uint32_t(*ifb_b)).ok());
  const uint64_t a1 = tx(ifb_name("a")), b1 = tx(ifb_name("b"));
  EXPECT_GE(a1 - a0, 20u);
  exchange(env.b(), kA);
  EXPECT_EQ(tx(ifb_name("a")), a1);
  EXPECT_GE(tx(ifb_name("b")) - b1, 20u);

  // No ifb: no filter; the rule still classifies, the packets stay put.
  ASSERT_TRUE(env.apply(slots, 0).ok());
  EXPECT_FALSE(ifb_filter());
  const uint64_t b2 = tx(ifb_name("b"));
  exchange(env.b(), kA);
  EXPECT_EQ(tx(ifb_name("b")), b2);

  // The agent dies with an ifb in the rules; reconcile has the journal's
  // two entries, and the ingress one takes the ifb filter with it.
  ASSERT_TRUE(env.apply(slots, uint32_t(*ifb_a)).ok());
  EXPECT_TRUE(ifb_filter());
  const auto journal = env.prog().legacy();
  ASSERT_EQ(journal.size(), 2u);
  env.drop_prog();
  EXPECT_TRUE(ifb_filter()) << "the filter went with the program object";
  st = run_in_netns(env.a(), [&] { return NetfaultProgram::remove_legacy(journal); });
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_FALSE(ifb_filter());
  auto clsact = clsact_present(env.a(), env.eth0());
  ASSERT_TRUE(clsact.ok()) << clsact.error().message();
  EXPECT_FALSE(*clsact) << "the clsact qdisc we created was left behind";
  exchange(env.b(), kA);
}

}  // namespace
}  // namespace nq::testing
