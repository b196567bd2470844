// The qdisc layer on real devices: tbf shaping of classified traffic only,
// exact restore of pre-existing root trees (and of the kernel default), the
// ifb's tree, and the executors' edge cases.
#include "agent/net/qdisc.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/action.h>
#include <netlink/route/cls/u32.h>
#include <netlink/route/qdisc/htb.h>
#include <netlink/route/qdisc/tbf.h>

#include <functional>
#include <iostream>

#include "agent/net/links.h"
#include "agent/net/qdisc_snapshot.h"
#include "nodequake/v1/agent.pb.h"
#include "tests/support/tc_state.h"
#include "tests/support/topology.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using net::kRootHandle;
using net::NlSocket;

// ------------------------------------------------- a "CNI" writing its own tree
// Built with libnl's own object API, independently of the code under test.

using ActPtr = std::unique_ptr<rtnl_act, net::NlFree<rtnl_act_put>>;

Status add_qdisc(NlSocket& sock, int ifindex, const char* kind, uint32_t handle, uint32_t parent,
                 const std::function<void(rtnl_qdisc*)>& configure = {}) {
  net::QdiscPtr q(rtnl_qdisc_alloc());
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
  rtnl_tc_set_handle(TC_CAST(q.get()), handle);
  rtnl_tc_set_parent(TC_CAST(q.get()), parent);
  if (int rc = rtnl_tc_set_kind(TC_CAST(q.get()), kind); rc < 0)
    return Error::from_netlink(rc, kind);
  if (configure) configure(q.get());
  if (int rc = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
    return Error::from_netlink(rc, std::string("add qdisc ") + kind);
  return ok();
}

void tbf_100mbit(rtnl_qdisc* q) {
  rtnl_qdisc_tbf_set_rate(q, 12'500'000, 65536, 0);
  rtnl_qdisc_tbf_set_limit(q, 262144);
}

// A u32 filter matching IPv4 destination `dst`, classifying into `classid`,
// with a mirred action mirroring to `mirror_ifindex` (0: no action).
Status add_u32_dst(NlSocket& sock, int ifindex, uint32_t parent, uint16_t prio, const char* dst,
                   uint32_t classid, int mirror_ifindex) {
  net::ClsPtr cls(rtnl_cls_alloc());
  rtnl_tc_set_ifindex(TC_CAST(cls.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(cls.get()), parent);
  if (int rc = rtnl_tc_set_kind(TC_CAST(cls.get()), "u32"); rc < 0)
    return Error::from_netlink(rc, "u32");
  rtnl_cls_set_prio(cls.get(), prio);
  rtnl_cls_set_protocol(cls.get(), ETH_P_IP);
  in_addr addr{};
  inet_pton(AF_INET, dst, &addr);
  if (int rc = rtnl_u32_add_key_in_addr(cls.get(), &addr, 32, 16, 0); rc < 0)
    return Error::from_netlink(rc, "u32 key");
  if (classid != 0) rtnl_u32_set_classid(cls.get(), classid);
  if (mirror_ifindex != 0) {
    ActPtr act(rtnl_act_alloc());
    rtnl_tc_set_kind(TC_CAST(act.get()), "mirred");
    rtnl_mirred_set_action(act.get(), TCA_EGRESS_MIRROR);
    rtnl_mirred_set_policy(act.get(), TC_ACT_PIPE);
    rtnl_mirred_set_ifindex(act.get(), mirror_ifindex);
    if (int rc = rtnl_u32_add_action(cls.get(), act.get()); rc < 0)
      return Error::from_netlink(rc, "u32 action");
  }
  if (int rc = rtnl_cls_add(sock.get(), cls.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
    return Error::from_netlink(rc, "add u32 filter");
  return ok();
}

// clsact with a filter on its egress hook: must survive everything untouched.
Status add_clsact(NlSocket& sock, int ifindex, int lo) {
  NQ_TRY(add_qdisc(sock, ifindex, "clsact", TC_H_MAKE(TC_H_CLSACT, 0), TC_H_CLSACT));
  return add_u32_dst(sock, ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS), 7, "10.77.0.99", 0,
                     lo);
}

enum class Preexisting { kTbfRoot, kHtbTree, kKernelDefault };

Status install_preexisting(NlSocket& sock, int ifindex, int lo, Preexisting kind) {
  switch (kind) {
    case Preexisting::kTbfRoot:
      return add_qdisc(sock, ifindex, "tbf", 0x00010000, TC_H_ROOT, tbf_100mbit);
    case Preexisting::kHtbTree:
      NQ_TRY(add_qdisc(sock, ifindex, "htb", 0x00010000, TC_H_ROOT, [](rtnl_qdisc* q) {
        rtnl_htb_set_defcls(q, 0x10);
        rtnl_htb_set_rate2quantum(q, 10);
      }));
      {
        net::ClassPtr c(rtnl_class_alloc());
        rtnl_tc_set_ifindex(TC_CAST(c.get()), ifindex);
        rtnl_tc_set_handle(TC_CAST(c.get()), 0x00010010);
        rtnl_tc_set_parent(TC_CAST(c.get()), 0x00010000);
        rtnl_tc_set_kind(TC_CAST(c.get()), "htb");
        rtnl_htb_set_rate(c.get(), 12'500'000);
        rtnl_htb_set_ceil(c.get(), 25'000'000);
        if (int rc = rtnl_class_add(sock.get(), c.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0)
          return Error::from_netlink(rc, "add htb class");
      }
      NQ_TRY(add_qdisc(sock, ifindex, "tbf", 0x00100000, 0x00010010, tbf_100mbit));
      return add_u32_dst(sock, ifindex, 0x00010000, 1, NetnsPair::kIpB, 0x00010010, lo);
    case Preexisting::kKernelDefault:
      return ok();
  }
  return ok();
}

// ------------------------------------------------- fixture

class QdiscNode : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto pair = NetnsPair::create();
    ASSERT_TRUE(pair.ok()) << pair.error().message();
    pair_ = std::move(*pair);
    auto server = ServerThread::start(pair_->b());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
  }

  // Runs `fn(sock, eth0 ifindex)` in namespace a.
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

  TcState capture_a() {
    auto s = capture_tc_state(pair_->a());
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? *s : TcState{};
  }

  net::TbfParams tbf(uint64_t rate_bps) {
    nodequake::v1::BandwidthFault f;
    f.set_rate_bps(rate_bps);
    auto p = net::tbf_from_proto(f, "spec.bandwidth");
    EXPECT_TRUE(p.ok()) << p.error().message();
    return p.ok() ? *p : net::TbfParams{};
  }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<ServerThread> server_;
};

double mbit(const traffic::Throughput& t) {
  return t.bits_per_second() / 1e6;
}

TEST_F(QdiscNode, TbfShapesOnlyClassifiedTraffic) {
  const TcState before = capture_a();
  auto snap = in_a([](NlSocket& s, int i) { return net::snapshot_root(s, i); });
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  EXPECT_TRUE(snap->kernel_default());  // a veth's noqueue
  const net::TbfParams one_mbit = tbf(1'000'000);
  ASSERT_TRUE(in_a([&](NlSocket& s, int i) -> Status {
                NQ_TRY(net::install_root(s, i, kRootHandle));
                return net::add_leaf(s, i, kRootHandle, 1, one_mbit);
              }).ok());
  auto is_ours = in_a([](NlSocket& s, int i) { return net::root_is(s, i, kRootHandle); });
  ASSERT_TRUE(is_ours.ok() && *is_ours);

  // Unclassified traffic takes HTB's direct path: not shaped. Ten times the
  // leaf's rate proves that; an absolute floor would measure the CPU instead
  // (a TCG guest on a busy host manages ~50 Mbit/s).
  auto free_up =
      run_in_netns(pair_->a(), [] { return traffic::tcp_upload(NetnsPair::kIpB, 9, 1s); });
  ASSERT_TRUE(free_up.ok()) << free_up.error().message();
  EXPECT_GT(mbit(*free_up), 10.0);

  // skb->priority = class id puts the flow into the 1 Mbit/s leaf.
  const uint32_t prio = net::class_id(kRootHandle, 1);
  auto shaped =
      run_in_netns(pair_->a(), [&] { return traffic::tcp_upload(NetnsPair::kIpB, 9, 3s, prio); });
  ASSERT_TRUE(shaped.ok()) << shaped.error().message();
  std::cout << "tbf 1 Mbit/s: classified " << mbit(*shaped) << " Mbit/s, unclassified "
            << mbit(*free_up) << " Mbit/s\n";
  EXPECT_NEAR(mbit(*shaped), 1.0, 0.1)
      << shaped->bytes << " bytes in " << shaped->elapsed.count() / 1e9 << " s";

  auto outcome = in_a([&](NlSocket& s, int i) -> Result<net::RestoreOutcome> {
    NQ_TRY(net::remove_leaf(s, i, kRootHandle, 1));
    return net::restore_root(s, i, kRootHandle, *snap);
  });
  ASSERT_TRUE(outcome.ok()) << outcome.error().message();
  EXPECT_EQ(*outcome, net::RestoreOutcome::kRestored);
  const TcState after = capture_a();
  EXPECT_EQ(after, before) << diff(before, after);
}

class QdiscRestore : public QdiscNode, public ::testing::WithParamInterface<Preexisting> {};

TEST_P(QdiscRestore, PreexistingRootSurvivesExactly) {
  auto setup = in_a([&](NlSocket& s, int i) -> Status {
    NQ_ASSIGN_OR_RETURN(int lo, net::link_index(s, "lo"));
    NQ_TRY(add_clsact(s, i, lo));
    return install_preexisting(s, i, lo, GetParam());
  });
  ASSERT_TRUE(setup.ok()) << setup.error().message();
  const TcState before = capture_a();
  ASSERT_FALSE(before.on("eth0").empty());

  auto snap = in_a([](NlSocket& s, int i) { return net::snapshot_root(s, i); });
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  EXPECT_EQ(snap->kernel_default(), GetParam() == Preexisting::kKernelDefault);

  const net::TbfParams ten_mbit = tbf(10'000'000);
  const net::TbfParams five_mbit = tbf(5'000'000);
  auto inject = in_a([&](NlSocket& s, int i) -> Status {
    NQ_TRY(net::install_root(s, i, kRootHandle));
    NQ_TRY(net::add_leaf(s, i, kRootHandle, 1, ten_mbit));
    NQ_TRY(net::add_leaf(s, i, kRootHandle, 2, five_mbit));
    // Installing again keeps the leaves (the manager may call it per fault).
    return net::install_root(s, i, kRootHandle);
  });
  ASSERT_TRUE(inject.ok()) << inject.error().message();
  const TcState during = capture_a();
  std::vector<std::string> ours;
  for (const TcObjectState& o : during.on("eth0"))
    if (o.type != "filter" && (o.handle >> 16 == 0x4e51 || o.parent >> 16 == 0x4e51))
      ours.push_back(o.type + " " + o.kind);
  EXPECT_EQ(ours, (std::vector<std::string>{"class htb", "class htb", "qdisc htb", "qdisc tbf",
                                            "qdisc tbf"}))
      << during;

  auto restored = in_a([&](NlSocket& s, int i) -> Result<net::RestoreOutcome> {
    NQ_TRY(net::remove_leaf(s, i, kRootHandle, 1));  // one leaf left on purpose
    return net::restore_root(s, i, kRootHandle, *snap);
  });
  ASSERT_TRUE(restored.ok()) << restored.error().message();
  EXPECT_EQ(*restored, net::RestoreOutcome::kRestored);

  // Traffic through the restored tree moves its counters; they are not state.
  auto probe = run_in_netns(
      pair_->a(), [] { return traffic::udp_echo_probe(NetnsPair::kIpB, 7, 20, 1ms, 100ms); });
  ASSERT_TRUE(probe.ok()) << probe.error().message();
  EXPECT_EQ(probe->received, 20);

  const TcState after = capture_a();
  EXPECT_EQ(after, before) << diff(before, after);

  auto again =
      in_a([&](NlSocket& s, int i) { return net::restore_root(s, i, kRootHandle, *snap); });
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(*again, net::RestoreOutcome::kAlreadyRestored);
  const TcState after_again = capture_a();
  EXPECT_EQ(after_again, before) << diff(before, after_again);
}

INSTANTIATE_TEST_SUITE_P(Roots, QdiscRestore,
                         ::testing::Values(Preexisting::kTbfRoot, Preexisting::kHtbTree,
                                           Preexisting::kKernelDefault),
                         [](const auto& p) {
                           switch (p.param) {
                             case Preexisting::kTbfRoot:
                               return "TbfRoot";
                             case Preexisting::kHtbTree:
                               return "HtbTreeWithFilter";
                             default:
                               return "KernelDefault";
                           }
                         });

TEST_F(QdiscNode, IfbGetsAnHtbTreeAndLeavesNoTrace) {
  const TcState before = capture_a();
  const std::string ifb = "nqifb" + std::to_string(::getpid() % 100000);
  const net::TbfParams two_mbit = tbf(2'000'000);
  auto run = in_a([&](NlSocket& s, int) -> Status {
    NQ_TRY(net::create_ifb(s, ifb));
    NQ_TRY(net::set_link_up(s, ifb));
    NQ_ASSIGN_OR_RETURN(int index, net::link_index(s, ifb));
    NQ_TRY(net::install_root(s, index, kRootHandle));
    NQ_TRY(net::add_leaf(s, index, kRootHandle, 7, two_mbit));
    NQ_ASSIGN_OR_RETURN(bool ours, net::root_is(s, index, kRootHandle));
    if (!ours) return Error::internal("root of the ifb is not ours");
    return ok();
  });
  ASSERT_TRUE(run.ok()) << run.error().message();
  const TcState during = capture_a();
  std::vector<std::string> on_ifb;
  for (const TcObjectState& o : during.on(ifb))
    on_ifb.push_back(o.type + " " + o.kind + " " + net::handle_str(o.handle));
  // tbf shows its inner queue as class 7:1.
  EXPECT_EQ(on_ifb, (std::vector<std::string>{"class htb 4e51:7", "class tbf 7:1",
                                              "qdisc htb 4e51:", "qdisc tbf 7:"}))
      << during;

  ASSERT_TRUE(in_a([&](NlSocket& s, int) { return net::delete_link(s, ifb); }).ok());
  const TcState after = capture_a();
  EXPECT_EQ(after, before) << diff(before, after);
}

TEST_F(QdiscNode, ExecutorEdgeCases) {
  const TcState before = capture_a();
  auto snap = in_a([](NlSocket& s, int i) { return net::snapshot_root(s, i); });
  ASSERT_TRUE(snap.ok()) << snap.error().message();

  const net::TbfParams one_mbit = tbf(1'000'000), three_mbit = tbf(3'000'000);
  // No root of ours yet: a leaf has nowhere to go.
  auto orphan =
      in_a([&](NlSocket& s, int i) { return net::add_leaf(s, i, kRootHandle, 1, one_mbit); });
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.error().status_code(), Code::kFailedPrecondition) << orphan.error().message();

  // Restoring while the root is not ours touches nothing.
  auto early =
      in_a([&](NlSocket& s, int i) { return net::restore_root(s, i, kRootHandle, *snap); });
  ASSERT_TRUE(early.ok()) << early.error().message();
  EXPECT_EQ(*early, net::RestoreOutcome::kAlreadyRestored);

  ASSERT_TRUE(in_a([](NlSocket& s, int i) { return net::install_root(s, i, kRootHandle); }).ok());
  // A bucket smaller than one frame would drop every full-size packet.
  auto tiny = in_a([&](NlSocket& s, int i) {
    return net::add_leaf(s, i, kRootHandle, 1, net::TbfParams{1'000'000, 1000, 10000});
  });
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.error().status_code(), Code::kFailedPrecondition) << tiny.error().message();
  // Updating a leaf in place and removing it twice.
  auto leaf = in_a([&](NlSocket& s, int i) -> Status {
    NQ_TRY(net::add_leaf(s, i, kRootHandle, 1, one_mbit));
    NQ_TRY(net::add_leaf(s, i, kRootHandle, 1, three_mbit));
    NQ_TRY(net::remove_leaf(s, i, kRootHandle, 1));
    NQ_TRY(net::remove_leaf(s, i, kRootHandle, 1));
    return net::remove_leaf(s, 1'000'000, kRootHandle, 1);  // no such device
  });
  ASSERT_TRUE(leaf.ok()) << leaf.error().message();

  // Someone replaces our root (as an operator would): restore leaves theirs alone.
  auto replaced = in_a([&](NlSocket& s, int i) -> Result<net::RestoreOutcome> {
    net::QdiscPtr q(rtnl_qdisc_alloc());
    rtnl_tc_set_ifindex(TC_CAST(q.get()), i);
    rtnl_tc_set_handle(TC_CAST(q.get()), 0x00050000);
    rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
    rtnl_tc_set_kind(TC_CAST(q.get()), "tbf");
    tbf_100mbit(q.get());
    if (int rc = rtnl_qdisc_add(s.get(), q.get(), NLM_F_CREATE | NLM_F_REPLACE); rc < 0)
      return Error::from_netlink(rc, "replace root");
    return net::restore_root(s, i, kRootHandle, *snap);
  });
  ASSERT_TRUE(replaced.ok()) << replaced.error().message();
  EXPECT_EQ(*replaced, net::RestoreOutcome::kForeignRoot);
  auto theirs = in_a([](NlSocket& s, int i) { return net::root_is(s, i, 0x00050000); });
  ASSERT_TRUE(theirs.ok());
  EXPECT_TRUE(*theirs);

  // Our snapshot is not a valid restore source once taken over our own root.
  ASSERT_TRUE(in_a([](NlSocket& s, int i) -> Status {
                NQ_TRY(net::install_root(s, i, kRootHandle));
                NQ_ASSIGN_OR_RETURN(auto ours, net::snapshot_root(s, i));
                auto r = net::restore_root(s, i, kRootHandle, ours);
                if (r.ok() || r.error().status_code() != Code::kInvalidArgument)
                  return Error::internal("restore from our own root was not refused");
                return ok();
              }).ok());
  auto cleanup =
      in_a([&](NlSocket& s, int i) { return net::restore_root(s, i, kRootHandle, *snap); });
  ASSERT_TRUE(cleanup.ok()) << cleanup.error().message();
  EXPECT_EQ(*cleanup, net::RestoreOutcome::kRestored);
  const TcState after = capture_a();
  EXPECT_EQ(after, before) << diff(before, after);
}

}  // namespace
}  // namespace nq::testing
