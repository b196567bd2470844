// Snapshot planning on synthetic dumps: which objects belong to the root
// tree, replay order, kernel defaults, what cannot be replayed, the replay
// flags, and the normalisation that strips statistics.
#include "agent/net/qdisc_snapshot.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/gen_stats.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>

#include <cstring>

#include "agent/net/qdisc.h"
#include "agent/net/tc_wire.h"

namespace nq::net {
namespace {

constexpr int kIf = 5;

TcObject make(uint16_t type, const std::string& kind, uint32_t handle, uint32_t parent,
              uint32_t info = 0, const std::vector<uint8_t>& options = {}) {
  TcObject o;
  o.type = type;
  o.ifindex = kIf;
  o.handle = handle;
  o.parent = parent;
  o.info = info;
  o.kind = kind;
  AttrWriter w;
  w.put_string(TCA_KIND, kind);
  if (!options.empty()) w.put(TCA_OPTIONS, options);
  o.attrs = w.take();
  return o;
}

TcObject qdisc(const std::string& kind, uint32_t handle, uint32_t parent) {
  return make(RTM_NEWQDISC, kind, handle, parent);
}
TcObject klass(uint32_t handle, uint32_t parent, const std::string& kind = "htb") {
  return make(RTM_NEWTCLASS, kind, handle, parent);
}
TcObject filter(const std::string& kind, uint32_t handle, uint32_t parent, uint16_t prio = 1) {
  return make(RTM_NEWTFILTER, kind, handle, parent,
              TC_H_MAKE(uint32_t{prio} << 16, htons(ETH_P_IP)));
}

std::vector<std::string> names(const QdiscTreeSnapshot& s) {
  std::vector<std::string> out;
  for (const std::string& m : s.messages()) {
    auto o = parse_tc_message(std::span(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
    out.push_back(o.ok() ? describe(*o) : o.error().message());
  }
  return out;
}

TEST(QdiscSnapshot, OrdersParentsFirstAndLeavesIngressAlone) {
  // Dump order as the kernel might give it: hash order for classes, clsact
  // mixed in, filters on the root and on a class.
  std::vector<TcObject> dev = {
      qdisc("tbf", 0x00200000, 0x00010020),       // leaf of class 1:20
      qdisc("clsact", 0xffff0000, TC_H_INGRESS),  // not part of the root tree
      qdisc("htb", 0x00010000, TC_H_ROOT),
      klass(0x00010020, 0x00010010),  // child before its parent
      klass(0x00010010, 0x00010000),
      filter("u32", 0x80000800, 0x00010000),
      filter("u32", 0x80000800, 0x00010010, 2),
      filter("matchall", 1, 0xfffffff2),  // on clsact ingress
  };
  auto snap = plan_snapshot(dev);
  ASSERT_TRUE(snap.ok()) << snap.error().message();
  EXPECT_FALSE(snap->kernel_default());
  EXPECT_EQ(names(*snap), (std::vector<std::string>{
                              "qdisc htb 1: parent root",
                              "class htb 1:10 parent 1:",
                              "class htb 1:20 parent 1:10",
                              "qdisc tbf 20: parent 1:20",
                              "filter u32 parent 1: pref 1 protocol 0x0800 handle 0x80000800",
                              "filter u32 parent 1:10 pref 2 protocol 0x0800 handle 0x80000800",
                          }));
}

TEST(QdiscSnapshot, MessagesAreNormalisedAndReplayable) {
  std::vector<TcObject> dev = {qdisc("tbf", 0x00010000, TC_H_ROOT)};
  auto snap = plan_snapshot(dev);
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->messages_size(), 1);
  const std::string& m = snap->messages(0);
  nlmsghdr nlh;
  std::memcpy(&nlh, m.data(), sizeof(nlh));
  EXPECT_EQ(nlh.nlmsg_type, RTM_NEWQDISC);
  EXPECT_EQ(nlh.nlmsg_flags, 0);
  EXPECT_EQ(nlh.nlmsg_seq, 0u);
  EXPECT_EQ(nlh.nlmsg_pid, 0u);
  EXPECT_EQ(nlh.nlmsg_len, m.size());
}

TEST(QdiscSnapshot, KernelDefaultRoot) {
  auto veth = plan_snapshot({qdisc("noqueue", 0, TC_H_ROOT)});
  ASSERT_TRUE(veth.ok());
  EXPECT_TRUE(veth->kernel_default());
  EXPECT_EQ(veth->messages_size(), 0);

  // A multiqueue NIC: default mq with default per-queue children, and one
  // queue's qdisc replaced by an operator: only that one needs replaying.
  auto mq = plan_snapshot({
      qdisc("mq", 0, TC_H_ROOT),
      klass(0x00000001, TC_H_ROOT, "mq"),
      klass(0x00000002, TC_H_ROOT, "mq"),
      qdisc("fq_codel", 0, 0x00000001),
      qdisc("tbf", 0x80010000, 0x00000002),
  });
  ASSERT_TRUE(mq.ok()) << mq.error().message();
  EXPECT_TRUE(mq->kernel_default());
  EXPECT_EQ(names(*mq), std::vector<std::string>{"qdisc tbf 8001: parent :2"});
}

TEST(QdiscSnapshot, RefusesWhatCannotBeReplayed) {
  auto bpf = plan_snapshot({qdisc("htb", 0x00010000, TC_H_ROOT), filter("bpf", 1, 0x00010000)});
  ASSERT_FALSE(bpf.ok());
  EXPECT_EQ(bpf.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(bpf.error().message().find("bpf filter's program"), std::string::npos);

  // The same filter on clsact is not our business.
  auto clsact =
      plan_snapshot({qdisc("noqueue", 0, TC_H_ROOT), qdisc("clsact", 0xffff0000, TC_H_INGRESS),
                     filter("bpf", 1, 0xfffffff3)});
  EXPECT_TRUE(clsact.ok());

  TcObject stab = qdisc("tbf", 0x00010000, TC_H_ROOT);
  tc_sizespec spec{};
  spec.tsize = 512;
  AttrWriter nest;
  nest.put_value(TCA_STAB_BASE, spec);
  AttrWriter w;
  w.put_string(TCA_KIND, "tbf");
  w.put(TCA_STAB, nest.bytes());
  stab.attrs = w.take();
  auto s = plan_snapshot({stab});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("size table"), std::string::npos);

  EXPECT_FALSE(plan_snapshot({qdisc("clsact", 0xffff0000, TC_H_INGRESS)}).ok());
}

TEST(QdiscReplay, FlagsPerObject) {
  auto snap = plan_snapshot({
      qdisc("htb", 0x00010000, TC_H_ROOT), klass(0x00010010, 0x00010000),
      qdisc("tbf", 0x00100000, 0x00010010),
      filter("u32", 0x80000000, 0x00010000),  // the filter's root hash table
      filter("u32", 0x80000800, 0x00010000),  // a key node in it
  });
  ASSERT_TRUE(snap.ok());
  auto steps = plan_replay(*snap, 42, kRootHandle);
  ASSERT_TRUE(steps.ok()) << steps.error().message();
  ASSERT_EQ(steps->size(), 5u);
  for (const ReplayStep& s : *steps) EXPECT_EQ(s.object.ifindex, 42);
  EXPECT_EQ((*steps)[0].flags, NLM_F_CREATE | NLM_F_REPLACE);
  EXPECT_FALSE((*steps)[0].exists_ok);
  EXPECT_EQ((*steps)[1].flags, NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_TRUE((*steps)[1].exists_ok);
  EXPECT_EQ((*steps)[2].flags, NLM_F_CREATE | NLM_F_REPLACE);
  EXPECT_EQ((*steps)[3].flags, NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_TRUE((*steps)[3].exists_ok);
  EXPECT_EQ((*steps)[4].flags, NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_FALSE((*steps)[4].exists_ok);
}

TEST(QdiscReplay, RejectsBadSnapshots) {
  QdiscTreeSnapshot garbage;
  garbage.add_messages("not a netlink message");
  auto g = plan_replay(garbage, 1, kRootHandle);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().status_code(), Code::kDataLoss);

  QdiscTreeSnapshot empty;  // not kernel_default, yet nothing to replay
  EXPECT_EQ(plan_replay(empty, 1, kRootHandle).error().status_code(), Code::kDataLoss);

  auto ours = plan_snapshot({qdisc("htb", kRootHandle, TC_H_ROOT)});
  ASSERT_TRUE(ours.ok());
  EXPECT_EQ(plan_replay(*ours, 1, kRootHandle).error().status_code(), Code::kInvalidArgument);

  QdiscTreeSnapshot deflt;
  deflt.set_kernel_default(true);
  auto d = plan_replay(deflt, 1, kRootHandle);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
}

TEST(QdiscSnapshot, DifferenceIgnoresOrder) {
  auto a = plan_snapshot({qdisc("htb", 0x00010000, TC_H_ROOT), klass(0x00010001, 0x00010000),
                          klass(0x00010002, 0x00010000)});
  ASSERT_TRUE(a.ok());
  QdiscTreeSnapshot b = *a;
  b.mutable_messages()->SwapElements(1, 2);
  EXPECT_EQ(snapshot_difference(*a, b), "");
  b.mutable_messages()->RemoveLast();
  EXPECT_EQ(snapshot_difference(*a, b), "missing class htb 1:1 parent 1:");
  b.set_kernel_default(true);
  EXPECT_EQ(snapshot_difference(*a, b),
            "kernel_default false became true; missing class htb 1:1 parent 1:");
}

// ------------------------------------------------------------ normalisation

TEST(TcNormalize, DropsStatisticsKeepsConfiguration) {
  tc_htb_glob glob{};
  glob.version = 0x30011;  // HTB_VER, as dumped
  glob.rate2quantum = 10;
  glob.defcls = 0x10;
  glob.direct_pkts = 12345;  // a counter
  AttrWriter opts;
  opts.put_value(TCA_HTB_INIT, glob);
  AttrWriter w;
  w.put_string(TCA_KIND, "htb");
  w.put(TCA_OPTIONS, opts.bytes());
  w.put_value<uint64_t>(TCA_STATS, 99);
  w.put_value<uint32_t>(TCA_XSTATS, 7);
  const size_t s2 = w.begin_nest(TCA_STATS2);
  w.put_value<uint64_t>(TCA_STATS_BASIC, 1);
  w.end_nest(s2);
  w.put_value<uint8_t>(TCA_HW_OFFLOAD, 0);
  w.put_value<uint32_t>(TCA_CHAIN, 0);
  TcObject o = make(RTM_NEWQDISC, "htb", 0x00010000, TC_H_ROOT);
  o.attrs = w.take();

  TcObject n = normalized(o);
  std::vector<uint16_t> types;
  for (const WireAttr& a : parse_attrs(n.attrs)) types.push_back(a.type);
  EXPECT_EQ(types, (std::vector<uint16_t>{TCA_KIND, TCA_OPTIONS, TCA_CHAIN}));
  tc_htb_glob out{};
  auto init = parse_attrs(find_attr(n, TCA_OPTIONS));
  ASSERT_EQ(init.size(), 1u);
  std::memcpy(&out, init[0].data.data(), sizeof(out));
  EXPECT_EQ(out.version, 3u);  // what htb_init accepts back
  EXPECT_EQ(out.defcls, 0x10u);
  EXPECT_EQ(out.direct_pkts, 0u);
  EXPECT_EQ(normalized(n), n);  // idempotent
}

TEST(TcNormalize, FilterCountersAndActionStats) {
  // u32 with a hit counter, a mark with a success count, and a mirred action
  // carrying stats, timestamps and reference counts.
  tc_u32_mark mark{0x1, 0xff, 77};
  AttrWriter mirred_opts;
  mirred_opts.put_value<uint64_t>(1 /* TCA_MIRRED_TM */, 123456);
  uint32_t gen[6] = {5 /*index*/, 0, 4 /*action*/, 3 /*refcnt*/, 1 /*bindcnt*/, 9};
  mirred_opts.put(2 /* TCA_MIRRED_PARMS */, gen, sizeof(gen));
  AttrWriter action;
  action.put_string(TCA_ACT_KIND, "mirred");
  action.put(TCA_ACT_OPTIONS, mirred_opts.bytes());
  action.put_value<uint64_t>(TCA_ACT_STATS, 5);
  AttrWriter acts;
  acts.put(1, action.bytes());
  AttrWriter opts;
  opts.put_value<uint32_t>(TCA_U32_CLASSID, 0x00010010);
  opts.put_value<uint64_t>(TCA_U32_PCNT, 1000);
  opts.put_value(TCA_U32_MARK, mark);
  opts.put(TCA_U32_ACT, acts.bytes());
  TcObject o = make(RTM_NEWTFILTER, "u32", 0x80000800, 0x00010000, 0, opts.bytes());

  TcObject n = normalized(o);
  auto fields = parse_attrs(find_attr(n, TCA_OPTIONS));
  std::vector<uint16_t> types;
  for (const WireAttr& a : fields) types.push_back(a.type);
  EXPECT_EQ(types, (std::vector<uint16_t>{TCA_U32_CLASSID, TCA_U32_MARK, TCA_U32_ACT}));
  tc_u32_mark m{};
  std::memcpy(&m, fields[1].data.data(), sizeof(m));
  EXPECT_EQ(m.val, 1u);
  EXPECT_EQ(m.mask, 0xffu);
  EXPECT_EQ(m.success, 0u);
  auto first = parse_attrs(parse_attrs(fields[2].data).at(0).data);
  std::vector<uint16_t> act_types;
  for (const WireAttr& a : first) act_types.push_back(a.type);
  EXPECT_EQ(act_types, (std::vector<uint16_t>{TCA_ACT_KIND, TCA_ACT_OPTIONS}));
  auto mopts = parse_attrs(first[1].data);
  ASSERT_EQ(mopts.size(), 1u);  // timestamps gone
  uint32_t parms[6];
  std::memcpy(parms, mopts[0].data.data(), sizeof(parms));
  EXPECT_EQ(parms[0], 5u);
  EXPECT_EQ(parms[2], 4u);
  EXPECT_EQ(parms[3], 0u);
  EXPECT_EQ(parms[4], 0u);
  EXPECT_EQ(parms[5], 9u);
}

TEST(TcMessage, RoundTripAndValidation) {
  TcObject o = filter("u32", 0x80000800, 0x00010000, 3);
  const std::vector<uint8_t> bytes = encode_tc_message(o);
  auto back = parse_tc_message(bytes);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(*back, o);

  EXPECT_EQ(parse_tc_message(std::vector<uint8_t>(10)).error().status_code(), Code::kDataLoss);
  std::vector<uint8_t> wrong = bytes;
  const uint16_t type = RTM_NEWLINK;
  std::memcpy(wrong.data() + 4, &type, sizeof(type));
  EXPECT_EQ(parse_tc_message(wrong).error().status_code(), Code::kDataLoss);
  std::vector<uint8_t> truncated = bytes;
  truncated.resize(truncated.size() - 2);
  EXPECT_EQ(parse_tc_message(truncated).error().status_code(), Code::kDataLoss);
}

}  // namespace
}  // namespace nq::net
