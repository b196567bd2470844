#include "agent/net/qdisc.h"

#include <linux/pkt_sched.h>
#include <netlink/route/qdisc/netem.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "agent/net/netem_dist.h"
#include "agent/net/tc_dump.h"
#include "agent/net/tc_wire.h"

namespace nq::net {
namespace {

// The kernel's qdisc clock ticks are 64 ns (PSCHED_SHIFT 6) since 2.6.31;
// buffers in tc_htb_opt / tc_tbf_qopt are expressed in them.
constexpr int kPschedShift = 6;

uint32_t ticks_to_send(uint64_t bytes, uint64_t bytes_per_sec) {
  const long double ns = (long double)bytes * 1e9L / (long double)bytes_per_sec;
  const long double ticks = ns / (1 << kPschedShift);
  return static_cast<uint32_t>(std::min<long double>(ticks, std::numeric_limits<uint32_t>::max()));
}

// A rate in a tc_ratespec: 32-bit bytes/s, the full value in a *_RATE64
// attribute when it does not fit. Linklayer ethernet (not "unaware") tells
// the kernel not to look for a legacy rate table, so none is sent.
tc_ratespec ratespec(uint64_t bytes_per_sec) {
  tc_ratespec r{};
  r.linklayer = TC_LINKLAYER_ETHERNET;
  r.rate = static_cast<uint32_t>(
      std::min<uint64_t>(bytes_per_sec, std::numeric_limits<uint32_t>::max()));
  return r;
}

Result<MsgPtr> tc_message(int type, int flags, int ifindex, uint32_t handle, uint32_t parent,
                          const std::vector<uint8_t>& attrs) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return Error::from_errno(ENOMEM, "nlmsg_alloc_simple");
  tcmsg tcm{};
  tcm.tcm_family = AF_UNSPEC;
  tcm.tcm_ifindex = ifindex;
  tcm.tcm_handle = handle;
  tcm.tcm_parent = parent;
  if (int rc = nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO); rc < 0)
    return Error::from_netlink(rc, "tc message header");
  if (!attrs.empty()) {
    if (int rc = nlmsg_append(msg.get(), const_cast<uint8_t*>(attrs.data()), attrs.size(),
                              NLMSG_ALIGNTO);
        rc < 0)
      return Error::from_netlink(rc, "tc message attributes");
  }
  return msg;
}

std::vector<uint8_t> tbf_attrs(const TbfParams& p) {
  const uint64_t bytes_per_sec = std::max<uint64_t>(p.rate_bps / 8, 1);
  tc_tbf_qopt opt{};
  opt.rate = ratespec(bytes_per_sec);
  opt.limit = p.limit_bytes;
  // Older kernels read the bucket as time (ticks); current ones prefer
  // TCA_TBF_BURST in bytes, which does not overflow at low rates.
  opt.buffer = ticks_to_send(p.buffer_bytes, bytes_per_sec);
  AttrWriter w;
  w.put_string(TCA_KIND, "tbf");
  const size_t nest = w.begin_nest(TCA_OPTIONS);
  w.put_value(TCA_TBF_PARMS, opt);
  if (bytes_per_sec > std::numeric_limits<uint32_t>::max())
    w.put_value<uint64_t>(TCA_TBF_RATE64, bytes_per_sec);
  w.put_value<uint32_t>(TCA_TBF_BURST, p.buffer_bytes);
  w.end_nest(nest);
  return w.take();
}

// libnl takes delays in whole microseconds; a nonzero delay never rounds to
// zero (netem would then refuse reordering, which needs a delay).
int micros(std::chrono::nanoseconds d) {
  if (d.count() <= 0) return 0;
  return std::max<int>(1, static_cast<int>(std::llround(double(d.count()) / 1000.0)));
}

// netem through libnl's rtnl_netem_* (which also knows netem's odd layout:
// a struct followed by attributes, all inside TCA_OPTIONS).
Result<MsgPtr> netem_message(int ifindex, uint32_t handle, uint32_t parent, const NetemParams& p) {
  QdiscPtr q(rtnl_qdisc_alloc());
  if (!q) return Error::from_errno(ENOMEM, "rtnl_qdisc_alloc");
  rtnl_tc* tc = TC_CAST(q.get());
  rtnl_tc_set_ifindex(tc, ifindex);
  rtnl_tc_set_handle(tc, handle);
  rtnl_tc_set_parent(tc, parent);
  if (int rc = rtnl_tc_set_kind(tc, "netem"); rc < 0)
    return Error::from_netlink(rc, "netem qdisc kind");
  rtnl_netem_set_limit(q.get(), static_cast<int>(p.limit));
  // libnl's setters take the kernel's u32 probabilities as int.
  auto prob = [](double percent) { return static_cast<int>(percent_to_probability(percent)); };
  if (p.delay.count() > 0) rtnl_netem_set_delay(q.get(), micros(p.delay));
  if (p.jitter.count() > 0) rtnl_netem_set_jitter(q.get(), micros(p.jitter));
  if (p.delay_correlation > 0) rtnl_netem_set_delay_correlation(q.get(), prob(p.delay_correlation));
  if (p.loss > 0) rtnl_netem_set_loss(q.get(), prob(p.loss));
  if (p.loss_correlation > 0) rtnl_netem_set_loss_correlation(q.get(), prob(p.loss_correlation));
  if (p.duplicate > 0) rtnl_netem_set_duplicate(q.get(), prob(p.duplicate));
  if (p.duplicate_correlation > 0)
    rtnl_netem_set_duplicate_correlation(q.get(), prob(p.duplicate_correlation));
  if (p.corrupt > 0) rtnl_netem_set_corruption_probability(q.get(), prob(p.corrupt));
  if (p.corrupt_correlation > 0)
    rtnl_netem_set_corruption_correlation(q.get(), prob(p.corrupt_correlation));
  if (p.reorder > 0) rtnl_netem_set_reorder_probability(q.get(), prob(p.reorder));
  if (p.reorder_correlation > 0)
    rtnl_netem_set_reorder_correlation(q.get(), prob(p.reorder_correlation));
  if (p.gap > 0) rtnl_netem_set_gap(q.get(), static_cast<int>(p.gap));
  const std::vector<int16_t> table = netem_distribution_table(p.distribution);
  if (!table.empty()) {
    if (int rc = rtnl_netem_set_delay_distribution_data(q.get(), table.data(), table.size());
        rc < 0)
      return Error::from_netlink(rc, "netem delay distribution");
  }
  nl_msg* raw = nullptr;
  if (int rc = rtnl_qdisc_build_add_request(q.get(), NLM_F_CREATE | NLM_F_REPLACE, &raw); rc < 0)
    return Error::from_netlink(rc, "build netem qdisc");
  return MsgPtr(raw);
}

Result<uint32_t> device_mtu(NlSocket& sock, int ifindex) {
  rtnl_link* raw = nullptr;
  if (int rc = rtnl_link_get_kernel(sock.get(), ifindex, nullptr, &raw); rc < 0)
    return Error::from_netlink(rc, "get link " + std::to_string(ifindex));
  LinkPtr link(raw);
  return rtnl_link_get_mtu(link.get());
}

std::string leaf_name(int ifindex, uint32_t root_handle, uint16_t minor) {
  return "class " + handle_str(class_id(root_handle, minor)) + " on ifindex " +
         std::to_string(ifindex);
}

bool is_gone(const Error& e) {
  const int err = e.sys_errno();
  return err == ENOENT || err == ENODEV;
}

}  // namespace

Status check_leaf_minor(uint32_t root_handle, uint16_t minor) {
  if (minor == 0 || minor == 0xffff || leaf_handle(minor) == (root_handle & 0xffff0000u))
    return Error::invalid_argument(
        "minor", std::to_string(minor) + " is reserved (0, ffff and the root's major)");
  return ok();
}

Result<MsgPtr> build_htb_root(int ifindex, uint32_t handle) {
  tc_htb_glob glob{};
  glob.version = TC_HTB_PROTOVER;
  glob.rate2quantum = 10;  // unused: every class has an explicit quantum
  glob.defcls = 0;         // no default class: unclassified packets go direct
  AttrWriter w;
  w.put_string(TCA_KIND, "htb");
  const size_t nest = w.begin_nest(TCA_OPTIONS);
  w.put_value(TCA_HTB_INIT, glob);
  w.put_value<uint32_t>(TCA_HTB_DIRECT_QLEN, kDirectQueueLen);
  w.end_nest(nest);
  return tc_message(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, ifindex, handle & 0xffff0000u,
                    TC_H_ROOT, w.bytes());
}

Result<MsgPtr> build_leaf_class(int ifindex, uint32_t root_handle, uint16_t minor) {
  NQ_TRY(check_leaf_minor(root_handle, minor));
  const uint64_t bytes_per_sec = kLeafClassRateBps / 8;
  tc_htb_opt opt{};
  opt.rate = ratespec(bytes_per_sec);
  opt.ceil = ratespec(bytes_per_sec);
  opt.buffer = ticks_to_send(kLeafClassBurst, bytes_per_sec);
  opt.cbuffer = opt.buffer;
  opt.quantum = kLeafClassQuantum;
  AttrWriter w;
  w.put_string(TCA_KIND, "htb");
  const size_t nest = w.begin_nest(TCA_OPTIONS);
  w.put_value(TCA_HTB_PARMS, opt);
  w.put_value<uint64_t>(TCA_HTB_RATE64, bytes_per_sec);
  w.put_value<uint64_t>(TCA_HTB_CEIL64, bytes_per_sec);
  w.end_nest(nest);
  return tc_message(RTM_NEWTCLASS, NLM_F_CREATE, ifindex, class_id(root_handle, minor),
                    root_handle & 0xffff0000u, w.bytes());
}

Result<MsgPtr> build_leaf_qdisc(int ifindex, uint32_t root_handle, uint16_t minor,
                                const LeafSpec& spec) {
  NQ_TRY(check_leaf_minor(root_handle, minor));
  const uint32_t parent = class_id(root_handle, minor);
  if (const auto* netem = std::get_if<NetemParams>(&spec))
    return netem_message(ifindex, leaf_handle(minor), parent, *netem);
  const auto& tbf = std::get<TbfParams>(spec);
  if (tbf.rate_bps < kMinRateBps || tbf.buffer_bytes == 0 || tbf.limit_bytes == 0)
    return Error::invalid_argument("tbf", "rate, buffer and limit must be resolved");
  return tc_message(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, ifindex, leaf_handle(minor), parent,
                    tbf_attrs(tbf));
}

Result<MsgPtr> build_delete_class(int ifindex, uint32_t root_handle, uint16_t minor) {
  NQ_TRY(check_leaf_minor(root_handle, minor));
  return tc_message(RTM_DELTCLASS, 0, ifindex, class_id(root_handle, minor),
                    root_handle & 0xffff0000u, {});
}

Result<MsgPtr> build_delete_root(int ifindex, uint32_t handle) {
  return tc_message(RTM_DELQDISC, 0, ifindex, handle & 0xffff0000u, TC_H_ROOT, {});
}

Result<bool> root_is(NlSocket& sock, int ifindex, uint32_t handle) {
  NQ_ASSIGN_OR_RETURN(std::vector<TcObject> qdiscs, dump_qdiscs(sock, ifindex));
  for (const TcObject& q : qdiscs)
    if (q.parent == TC_H_ROOT) return q.handle == (handle & 0xffff0000u);
  return false;
}

Status install_root(NlSocket& sock, int ifindex, uint32_t handle) {
  NQ_ASSIGN_OR_RETURN(bool ours, root_is(sock, ifindex, handle));
  // Replacing our own HTB would fail (HTB cannot change its global options)
  // and must not drop the leaves: installing twice is a no-op.
  if (ours) return ok();
  NQ_ASSIGN_OR_RETURN(MsgPtr msg, build_htb_root(ifindex, handle));
  return transact(
      sock, msg.get(),
      "install htb root " + handle_str(handle) + " on ifindex " + std::to_string(ifindex));
}

Status add_leaf(NlSocket& sock, int ifindex, uint32_t root_handle, uint16_t minor,
                const LeafSpec& spec) {
  const std::string what = leaf_name(ifindex, root_handle, minor);
  NQ_TRY(check_leaf_minor(root_handle, minor));
  NQ_ASSIGN_OR_RETURN(bool ours, root_is(sock, ifindex, root_handle));
  if (!ours)
    return Error::failed_precondition(what + ": our root " + handle_str(root_handle) +
                                      " is not installed");
  LeafSpec fitted = spec;
  if (auto* tbf = std::get_if<TbfParams>(&fitted)) {
    // Defaults were planned for a 1500-byte MTU; this device may differ.
    NQ_ASSIGN_OR_RETURN(uint32_t mtu, device_mtu(sock, ifindex));
    *tbf = fit_to_mtu(*tbf, mtu);
    if (tbf->buffer_bytes < uint64_t{mtu} + 14)
      return Error::failed_precondition(
          what + ": tbf buffer of " + std::to_string(tbf->buffer_bytes) +
          " bytes is smaller than one frame at MTU " + std::to_string(mtu));
  }
  NQ_ASSIGN_OR_RETURN(MsgPtr cls, build_leaf_class(ifindex, root_handle, minor));
  NQ_ASSIGN_OR_RETURN(MsgPtr leaf, build_leaf_qdisc(ifindex, root_handle, minor, fitted));
  NQ_TRY(transact(sock, cls.get(), "add " + what));
  const char* kind = std::holds_alternative<NetemParams>(spec) ? "netem" : "tbf";
  if (Status st = transact(sock, leaf.get(), std::string("add ") + kind + " leaf to " + what);
      !st.ok()) {
    // A class without its shaping leaf is useless: take it away again.
    (void)remove_leaf(sock, ifindex, root_handle, minor);
    return st;
  }
  return ok();
}

Status remove_leaf(NlSocket& sock, int ifindex, uint32_t root_handle, uint16_t minor) {
  NQ_ASSIGN_OR_RETURN(MsgPtr msg, build_delete_class(ifindex, root_handle, minor));
  Status st = transact(sock, msg.get(), "delete " + leaf_name(ifindex, root_handle, minor));
  if (!st.ok() && is_gone(st.error())) return ok();
  return st;
}

}  // namespace nq::net
