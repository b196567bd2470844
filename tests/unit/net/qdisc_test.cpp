// The qdisc layer's netlink messages, decoded field by field as the kernel
// would read them, without sending anything.
#include "agent/net/qdisc.h"

#include <gtest/gtest.h>
#include <linux/pkt_sched.h>
#include <netlink/utils.h>

#include <cstring>
#include <limits>

#include "agent/net/netem_dist.h"
#include "agent/net/tc_dump.h"
#include "agent/net/tc_wire.h"

namespace nq::net {
namespace {

using namespace std::chrono_literals;

struct Decoded {
  nlmsghdr nlh{};
  tcmsg tcm{};
  std::vector<uint8_t> attrs;
  std::string kind;
  std::vector<uint8_t> options;  // TCA_OPTIONS payload
};

Decoded decode(nl_msg* msg) {
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  const auto* p = reinterpret_cast<const uint8_t*>(hdr);
  Decoded d;
  std::memcpy(&d.nlh, p, sizeof(d.nlh));
  std::memcpy(&d.tcm, p + NLMSG_HDRLEN, sizeof(d.tcm));
  const size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(tcmsg));
  d.attrs.assign(p + off, p + hdr->nlmsg_len);
  for (const WireAttr& a : parse_attrs(d.attrs)) {
    if (a.type == TCA_KIND) d.kind = attr_string(a.data);
    if (a.type == TCA_OPTIONS) d.options.assign(a.data.begin(), a.data.end());
  }
  return d;
}

template <class T>
T get(std::span<const uint8_t> data) {
  T v{};
  EXPECT_GE(data.size(), sizeof(T));
  std::memcpy(&v, data.data(), std::min(data.size(), sizeof(T)));
  return v;
}

std::span<const uint8_t> attr(std::span<const uint8_t> attrs, uint16_t type) {
  for (const WireAttr& a : parse_attrs(attrs))
    if (a.type == type) return a.data;
  return {};
}

TEST(QdiscHandles, ClassAndLeafHandles) {
  EXPECT_EQ(class_id(kRootHandle, 1), 0x4e510001u);
  EXPECT_EQ(class_id(0x4e510000, 0x2a), 0x4e51002au);
  EXPECT_EQ(leaf_handle(0x2a), 0x002a0000u);
  EXPECT_TRUE(check_leaf_minor(kRootHandle, 1).ok());
  EXPECT_TRUE(check_leaf_minor(kRootHandle, 0xfffe).ok());
  EXPECT_FALSE(check_leaf_minor(kRootHandle, 0).ok());
  EXPECT_FALSE(check_leaf_minor(kRootHandle, 0xffff).ok());
  EXPECT_FALSE(check_leaf_minor(kRootHandle, 0x4e51).ok());
  EXPECT_EQ(handle_str(kRootHandle), "4e51:");
  EXPECT_EQ(handle_str(0x4e51002a), "4e51:2a");
  EXPECT_EQ(handle_str(TC_H_ROOT), "root");
}

TEST(QdiscMessages, HtbRoot) {
  auto msg = build_htb_root(7, kRootHandle);
  ASSERT_TRUE(msg.ok()) << msg.error().message();
  Decoded d = decode(msg->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_NEWQDISC);
  EXPECT_EQ(d.nlh.nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE | NLM_F_EXCL),
            NLM_F_CREATE | NLM_F_REPLACE);
  EXPECT_EQ(d.tcm.tcm_ifindex, 7);
  EXPECT_EQ(d.tcm.tcm_handle, 0x4e510000u);
  EXPECT_EQ(d.tcm.tcm_parent, TC_H_ROOT);
  EXPECT_EQ(d.kind, "htb");
  const auto glob = get<tc_htb_glob>(attr(d.options, TCA_HTB_INIT));
  EXPECT_EQ(glob.version, 3u);
  EXPECT_EQ(glob.defcls, 0u);  // unclassified traffic takes the direct path
  EXPECT_EQ(get<uint32_t>(attr(d.options, TCA_HTB_DIRECT_QLEN)), kDirectQueueLen);
}

TEST(QdiscMessages, LeafClassNeverLimits) {
  auto msg = build_leaf_class(7, kRootHandle, 3);
  ASSERT_TRUE(msg.ok()) << msg.error().message();
  Decoded d = decode(msg->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_NEWTCLASS);
  EXPECT_EQ(d.nlh.nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL), NLM_F_CREATE);
  EXPECT_EQ(d.tcm.tcm_handle, 0x4e510003u);
  EXPECT_EQ(d.tcm.tcm_parent, 0x4e510000u);
  EXPECT_EQ(d.kind, "htb");
  const auto opt = get<tc_htb_opt>(attr(d.options, TCA_HTB_PARMS));
  // 100 Gbit/s does not fit the 32-bit field: saturated there, exact in RATE64.
  EXPECT_EQ(opt.rate.rate, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(opt.ceil.rate, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(opt.rate.linklayer, TC_LINKLAYER_ETHERNET);
  EXPECT_EQ(get<uint64_t>(attr(d.options, TCA_HTB_RATE64)), 12'500'000'000ULL);
  EXPECT_EQ(get<uint64_t>(attr(d.options, TCA_HTB_CEIL64)), 12'500'000'000ULL);
  EXPECT_EQ(opt.quantum, kLeafClassQuantum);
  // 256 KiB at 12.5 GB/s = 20971 ns = 327 ticks of 64 ns.
  EXPECT_EQ(opt.buffer, 327u);
  EXPECT_EQ(opt.cbuffer, 327u);
  EXPECT_TRUE(attr(d.options, TCA_HTB_RTAB).empty());
}

TEST(QdiscMessages, TbfLeaf) {
  TbfParams p{1'000'000, 3028, 6250};
  auto msg = build_leaf_qdisc(7, kRootHandle, 3, p);
  ASSERT_TRUE(msg.ok()) << msg.error().message();
  Decoded d = decode(msg->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_NEWQDISC);
  EXPECT_EQ(d.nlh.nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE | NLM_F_EXCL),
            NLM_F_CREATE | NLM_F_REPLACE);
  EXPECT_EQ(d.tcm.tcm_handle, 0x00030000u);
  EXPECT_EQ(d.tcm.tcm_parent, 0x4e510003u);
  EXPECT_EQ(d.kind, "tbf");
  const auto opt = get<tc_tbf_qopt>(attr(d.options, TCA_TBF_PARMS));
  EXPECT_EQ(opt.rate.rate, 125000u);
  EXPECT_EQ(opt.rate.linklayer, TC_LINKLAYER_ETHERNET);
  EXPECT_EQ(opt.limit, 6250u);
  // 3028 bytes at 125000 B/s = 24.224 ms = 378500 ticks.
  EXPECT_EQ(opt.buffer, 378500u);
  EXPECT_EQ(opt.peakrate.rate, 0u);
  EXPECT_EQ(get<uint32_t>(attr(d.options, TCA_TBF_BURST)), 3028u);
  EXPECT_TRUE(attr(d.options, TCA_TBF_RATE64).empty());
}

TEST(QdiscMessages, TbfAtTheExtremes) {
  auto fast =
      build_leaf_qdisc(7, kRootHandle, 3, TbfParams{100'000'000'000ULL, 125'000'000, 625'000'000});
  ASSERT_TRUE(fast.ok());
  Decoded d = decode(fast->get());
  auto opt = get<tc_tbf_qopt>(attr(d.options, TCA_TBF_PARMS));
  EXPECT_EQ(opt.rate.rate, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(get<uint64_t>(attr(d.options, TCA_TBF_RATE64)), 12'500'000'000ULL);
  EXPECT_EQ(get<uint32_t>(attr(d.options, TCA_TBF_BURST)), 125'000'000u);

  // 8 bit/s: the bucket takes 3028 s to fill, more ticks than u32 holds;
  // the byte-sized TCA_TBF_BURST is what the kernel uses.
  auto slow = build_leaf_qdisc(7, kRootHandle, 3, TbfParams{8, 3028, 3028});
  ASSERT_TRUE(slow.ok());
  d = decode(slow->get());
  opt = get<tc_tbf_qopt>(attr(d.options, TCA_TBF_PARMS));
  EXPECT_EQ(opt.rate.rate, 1u);
  EXPECT_EQ(opt.buffer, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(get<uint32_t>(attr(d.options, TCA_TBF_BURST)), 3028u);

  EXPECT_FALSE(build_leaf_qdisc(7, kRootHandle, 3, TbfParams{}).ok());
}

// Reads netem's TCA_OPTIONS the way sch_netem does: a tc_netem_qopt, then
// attributes after it inside the same TCA_OPTIONS.
struct NetemOptions {
  tc_netem_qopt qopt{};
  std::vector<uint8_t> nested;
};

NetemOptions netem_options(const Decoded& d) {
  NetemOptions n;
  EXPECT_GE(d.options.size(), sizeof(tc_netem_qopt));
  std::memcpy(&n.qopt, d.options.data(), sizeof(n.qopt));
  n.nested.assign(d.options.begin() + NLA_ALIGN(sizeof(tc_netem_qopt)), d.options.end());
  EXPECT_TRUE(attrs_well_formed(n.nested));
  return n;
}

TEST(QdiscMessages, NetemLeafCarriesEveryParameter) {
  NetemParams p;
  p.delay = 100ms;
  p.jitter = 10ms;
  p.delay_correlation = 25;
  p.distribution = DelayDistribution::kNormal;
  p.loss = 30;
  p.loss_correlation = 5;
  p.duplicate = 2;
  p.corrupt = 1;
  p.corrupt_correlation = 4;
  p.reorder = 10;
  p.reorder_correlation = 50;
  p.gap = 5;
  p.limit = 2000;
  auto msg = build_leaf_qdisc(9, kRootHandle, 4, p);
  ASSERT_TRUE(msg.ok()) << msg.error().message();
  Decoded d = decode(msg->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_NEWQDISC);
  EXPECT_EQ(d.nlh.nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE | NLM_F_EXCL),
            NLM_F_CREATE | NLM_F_REPLACE);
  EXPECT_EQ(d.tcm.tcm_ifindex, 9);
  EXPECT_EQ(d.tcm.tcm_handle, 0x00040000u);
  EXPECT_EQ(d.tcm.tcm_parent, 0x4e510004u);
  EXPECT_EQ(d.kind, "netem");
  NetemOptions n = netem_options(d);
  // libnl converts microseconds to the kernel's ticks with /proc/net/psched.
  EXPECT_EQ(n.qopt.latency, nl_us2ticks(100000));
  EXPECT_EQ(n.qopt.jitter, nl_us2ticks(10000));
  EXPECT_EQ(n.qopt.limit, 2000u);
  EXPECT_EQ(n.qopt.loss, percent_to_probability(30));
  EXPECT_EQ(n.qopt.duplicate, percent_to_probability(2));
  EXPECT_EQ(n.qopt.gap, 5u);
  const auto corr = get<tc_netem_corr>(attr(n.nested, TCA_NETEM_CORR));
  EXPECT_EQ(corr.delay_corr, percent_to_probability(25));
  EXPECT_EQ(corr.loss_corr, percent_to_probability(5));
  EXPECT_EQ(corr.dup_corr, 0u);
  const auto reorder = get<tc_netem_reorder>(attr(n.nested, TCA_NETEM_REORDER));
  EXPECT_EQ(reorder.probability, percent_to_probability(10));
  EXPECT_EQ(reorder.correlation, percent_to_probability(50));
  const auto corrupt = get<tc_netem_corrupt>(attr(n.nested, TCA_NETEM_CORRUPT));
  EXPECT_EQ(corrupt.probability, percent_to_probability(1));
  EXPECT_EQ(corrupt.correlation, percent_to_probability(4));
  const auto dist = attr(n.nested, TCA_NETEM_DELAY_DIST);
  const auto table = netem_distribution_table(DelayDistribution::kNormal);
  ASSERT_EQ(dist.size(), table.size() * sizeof(int16_t));
  EXPECT_EQ(std::memcmp(dist.data(), table.data(), dist.size()), 0);
}

TEST(QdiscMessages, NetemLossOnlyHasNoOptionalAttributes) {
  NetemParams p;
  p.loss = 100;
  auto msg = build_leaf_qdisc(9, kRootHandle, 4, p);
  ASSERT_TRUE(msg.ok()) << msg.error().message();
  NetemOptions n = netem_options(decode(msg->get()));
  EXPECT_EQ(n.qopt.loss, std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(n.qopt.latency, 0u);
  EXPECT_EQ(n.qopt.limit, 1000u);
  EXPECT_TRUE(attr(n.nested, TCA_NETEM_CORR).empty());
  EXPECT_TRUE(attr(n.nested, TCA_NETEM_DELAY_DIST).empty());
  EXPECT_TRUE(attr(n.nested, TCA_NETEM_REORDER).empty());
}

TEST(QdiscMessages, Deletes) {
  auto cls = build_delete_class(7, kRootHandle, 3);
  ASSERT_TRUE(cls.ok());
  Decoded d = decode(cls->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_DELTCLASS);
  EXPECT_EQ(d.tcm.tcm_handle, 0x4e510003u);
  EXPECT_EQ(d.tcm.tcm_parent, 0x4e510000u);
  EXPECT_TRUE(d.attrs.empty());

  auto root = build_delete_root(7, kRootHandle);
  ASSERT_TRUE(root.ok());
  d = decode(root->get());
  EXPECT_EQ(d.nlh.nlmsg_type, RTM_DELQDISC);
  // The handle makes the kernel refuse (EINVAL) if the root is not ours.
  EXPECT_EQ(d.tcm.tcm_handle, 0x4e510000u);
  EXPECT_EQ(d.tcm.tcm_parent, TC_H_ROOT);

  EXPECT_FALSE(build_delete_class(7, kRootHandle, 0).ok());
}

}  // namespace
}  // namespace nq::net
