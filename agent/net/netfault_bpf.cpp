#include "agent/net/netfault_bpf.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <string_view>

#include "agent/bpf/verifier_log.h"
#include "agent/net/netlink.h"
#include "agent/net/tc_dump.h"
#include "agent/net/tc_wire.h"
#include "common/fd.h"
#include "netfault.skel.h"

namespace nq::net {
namespace {

// Debian's UAPI headers are 6.1's, which predate TCX (include/uapi/linux/bpf.h
// of 6.6 numbers them so). libbpf 1.1 has no TCX helper, but its
// bpf_link_create() passes the attach type through to BPF_LINK_CREATE.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;

constexpr uint32_t kParentIngress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
constexpr uint32_t kParentEgress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

// Holds a whole failing verification (see VerifierLog).
constexpr size_t kVerifierLogSize = 8u << 20;

struct SkelDeleter {
  void operator()(netfault* skel) const noexcept { netfault__destroy(skel); }
};
using SkelPtr = std::unique_ptr<netfault, SkelDeleter>;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%x", v);
  return buf;
}

// Errors that mean "the filter or device is not there any more".
bool gone(int err) {
  return err == ENOENT || err == ENODEV;
}

template <class Key>
Key lpm_key(const Prefix& p) {
  Key k{};
  k.prefixlen = p.len;
  std::memcpy(k.addr, p.addr.data(), sizeof(k.addr));
  return k;
}

template <class Key>
Status read_trie(int fd, std::map<Prefix, uint32_t>& out) {
  Key prev{}, next{};
  bool first = true;
  // Bounded: a trie concurrently rewritten could otherwise restart forever.
  for (int n = 0; n <= NQ_LPM_MAX_ENTRIES; ++n) {
    if (bpf_map_get_next_key(fd, first ? nullptr : &prev, &next) != 0) {
      if (errno == ENOENT) return ok();
      return Error::from_errno(errno, "iterate LPM trie");
    }
    uint32_t mask = 0;
    if (bpf_map_lookup_elem(fd, &next, &mask) != 0)
      return Error::from_errno(errno, "read LPM trie entry");
    Prefix p;
    p.len = static_cast<uint8_t>(next.prefixlen);
    std::memcpy(p.addr.data(), next.addr, sizeof(next.addr));
    out[p] = mask;
    prev = next;
    first = false;
  }
  return Error::internal("LPM trie holds more entries than it can");
}

// The clsact qdisc of `ifindex`, if any, and how many filters hang off it.
struct ClsactState {
  bool present = false;
  int filters = 0;
};

Result<ClsactState> clsact_state(NlSocket& sock, int ifindex) {
  nl_cache* raw = nullptr;
  if (int rc = rtnl_qdisc_alloc_cache(sock.get(), &raw); rc < 0)
    return Error::from_netlink(rc, "dump qdiscs");
  CachePtr qdiscs(raw);
  ClsactState out;
  for (nl_object* o = nl_cache_get_first(qdiscs.get()); o; o = nl_cache_get_next(o)) {
    auto* q = reinterpret_cast<rtnl_tc*>(o);
    const char* kind = rtnl_tc_get_kind(q);
    if (rtnl_tc_get_ifindex(q) == ifindex && kind && std::string_view(kind) == "clsact")
      out.present = true;
  }
  if (!out.present) return out;
  for (uint32_t parent : {kParentIngress, kParentEgress}) {
    raw = nullptr;
    if (int rc = rtnl_cls_alloc_cache(sock.get(), ifindex, parent, &raw); rc < 0)
      return Error::from_netlink(rc, "dump tc filters of ifindex " + std::to_string(ifindex));
    CachePtr filters(raw);
    out.filters += nl_cache_nitems(filters.get());
  }
  return out;
}

// A request about the ifb filter (see netfault_bpf.h): RTM_NEWTFILTER
// (prog_fd and ifb set) or RTM_DELTFILTER. libbpf's bpf_tc_attach() makes
// direct-action filters only, and those cannot carry actions: this one is
// cls_bpf in classifier mode running nq_ingress_ifb, whose match runs a
// mirred egress redirect to the ifb. Unlike bpf_redirect() on 6.1, mirred
// sets skb->redirected, without which the ifb drops the packet.
Result<MsgPtr> ifb_filter_request(int type, int flags, int ifindex, int prog_fd, uint32_t ifb) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return Error::from_errno(ENOMEM, "nlmsg_alloc_simple");
  tcmsg tcm{};
  tcm.tcm_family = AF_UNSPEC;
  tcm.tcm_ifindex = ifindex;
  tcm.tcm_handle = NetfaultProgram::kLegacyHandle;
  tcm.tcm_parent = kParentIngress;
  tcm.tcm_info = TC_H_MAKE(NetfaultProgram::kLegacyIfbPriority << 16, htons(ETH_P_ALL));
  if (int rc = nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO); rc < 0)
    return Error::from_netlink(rc, "tc filter header");
  AttrWriter w;
  w.put_string(TCA_KIND, "bpf");
  if (type == RTM_NEWTFILTER) {
    const size_t options = w.begin_nest(TCA_OPTIONS);
    w.put_value<uint32_t>(TCA_BPF_FD, static_cast<uint32_t>(prog_fd));
    w.put_string(TCA_BPF_NAME, "nq_ingress_ifb");
    const size_t actions = w.begin_nest(TCA_BPF_ACT);
    const size_t first = w.begin_nest(1);  // actions are numbered from 1
    w.put_string(TCA_ACT_KIND, "mirred");
    const size_t act_options = w.begin_nest(TCA_ACT_OPTIONS);
    tc_mirred parms{};
    parms.action = TC_ACT_STOLEN;  // the packet is the ifb's now
    parms.eaction = TCA_EGRESS_REDIR;
    parms.ifindex = ifb;
    w.put_value(TCA_MIRRED_PARMS, parms);
    w.end_nest(act_options);
    w.end_nest(first);
    w.end_nest(actions);
    w.end_nest(options);
  }
  const std::vector<uint8_t> attrs = w.take();
  if (int rc =
          nlmsg_append(msg.get(), const_cast<uint8_t*>(attrs.data()), attrs.size(), NLMSG_ALIGNTO);
      rc < 0)
    return Error::from_netlink(rc, "tc filter attributes");
  return msg;
}

}  // namespace

struct NetfaultProgram::Impl {
  NetfaultLoadOptions options;
  SkelPtr skel;
  UniqueFd egress_link;
  UniqueFd ingress_link;
  std::vector<LegacyAttachment> legacy;
  AttachMode mode = AttachMode::kNone;
  int ifindex = 0;
  // What the maps hold, as far as we know; unset after a failed apply().
  std::optional<CompiledRules> current;
  // clsact mode: a socket in the interface's namespace (apply() may run on
  // any thread), and the ifb the ifb filter redirects to (0: no filter).
  std::optional<NlSocket> tc_sock;
  uint32_t ifb_filter_target = 0;

  int map_fd(bpf_map* m) const { return bpf_map__fd(m); }
  int trie_fd(Trie t) const {
    switch (t) {
      case Trie::kRemote4:
        return map_fd(skel->maps.nq_remote4);
      case Trie::kRemote6:
        return map_fd(skel->maps.nq_remote6);
      case Trie::kLocal4:
        return map_fd(skel->maps.nq_local4);
      case Trie::kLocal6:
        return map_fd(skel->maps.nq_local6);
    }
    return -1;
  }

  Status attach_tcx(int ifindex);
  Status attach_legacy(int ifindex);
  // Creates, repoints (ifb != 0) or removes (ifb == 0) the ifb filter.
  Status point_ifb_filter(uint32_t ifb);
  Status execute(const MapOp& op);
  Status clear_slot_state(uint32_t slot);
};

NetfaultProgram::NetfaultProgram(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NetfaultProgram::NetfaultProgram(NetfaultProgram&&) noexcept = default;
NetfaultProgram& NetfaultProgram::operator=(NetfaultProgram&&) noexcept = default;
// Members go in reverse order: the links close before the skeleton.
NetfaultProgram::~NetfaultProgram() = default;

Result<NetfaultProgram> NetfaultProgram::load(const NetfaultLoadOptions& options) {
  if (options.l2_header_len > 64)
    return Error::invalid_argument("l2_header_len", std::to_string(options.l2_header_len) +
                                                        " bytes is not a link-layer header");
  if (options.ipv6_ext_headers > NQ_IPV6_EXT_HDR_CAP)
    return Error::invalid_argument("ipv6_ext_headers",
                                   "at most " + std::to_string(NQ_IPV6_EXT_HDR_CAP));
  bpf::VerifierLog log(kVerifierLogSize);  // needed only while loading
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  log.attach(opts);

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->skel.reset(netfault__open_opts(&opts));
  if (!impl->skel) return Error::from_errno(errno, "open netfault BPF object");
  if (!impl->skel->bss) return Error::internal("netfault BPF object without its .bss section");
  impl->skel->rodata->l2_hdr_len = options.l2_header_len;
  impl->skel->rodata->ipv6_ext_hdr_max = options.ipv6_ext_headers;
  if (int rc = netfault__load(impl->skel.get()); rc != 0) {
    return log.annotate(Error::from_errno(-rc, "load netfault BPF object"));
  }
  // The maps start zeroed: no rule, no ifb, which is CompiledRules{}.
  impl->current = CompiledRules{};
  return NetfaultProgram(std::move(impl));
}

Status NetfaultProgram::attach(int ifindex) {
  if (impl_->mode != AttachMode::kNone)
    return Error::failed_precondition("netfault program is already attached to ifindex " +
                                      std::to_string(impl_->ifindex));
  if (ifindex <= 0)
    return Error::invalid_argument("ifindex", std::to_string(ifindex) + " is not an ifindex");
  using Attach = NetfaultLoadOptions::Attach;
  if (impl_->options.attach != Attach::kLegacyTc) {
    Status st = impl_->attach_tcx(ifindex);
    // A kernel without TCX rejects the attach type with EINVAL.
    if (st.ok() || impl_->options.attach == Attach::kTcx || st.error().sys_errno() != EINVAL)
      return st;
  }
  return impl_->attach_legacy(ifindex);
}

Status NetfaultProgram::Impl::attach_tcx(int target) {
  const auto link = [&](bpf_program* prog, int type, const char* what) -> Result<UniqueFd> {
    const int fd =
        bpf_link_create(bpf_program__fd(prog), target, static_cast<bpf_attach_type>(type), nullptr);
    if (fd < 0)
      return Error::from_errno(
          errno, std::string("TCX ") + what + " link on ifindex " + std::to_string(target));
    return UniqueFd(fd);
  };
  NQ_ASSIGN_OR_RETURN(UniqueFd egress, link(skel->progs.nq_egress, kBpfTcxEgress, "egress"));
  NQ_ASSIGN_OR_RETURN(UniqueFd ingress, link(skel->progs.nq_ingress, kBpfTcxIngress, "ingress"));
  egress_link = std::move(egress);
  ingress_link = std::move(ingress);
  mode = AttachMode::kTcx;
  ifindex = target;
  return ok();
}

Status NetfaultProgram::Impl::attach_legacy(int target) {
  // Opened here, inside the interface's namespace, for apply() and detach()
  // on whatever thread they run.
  NQ_ASSIGN_OR_RETURN(NlSocket sock, NlSocket::open_route());
  const uint32_t zero = 0;
  nq_config config{};
  if (bpf_map_lookup_elem(map_fd(skel->maps.nq_config), &zero, &config) != 0)
    return Error::from_errno(errno, "read config");

  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = target;
  hook.attach_point = BPF_TC_INGRESS;  // any hook point creates the clsact qdisc
  int rc = bpf_tc_hook_create(&hook);
  if (rc < 0 && rc != -EEXIST)
    return Error::from_errno(-rc, "create clsact qdisc on ifindex " + std::to_string(target));
  const bool created = rc == 0;

  // From its first packet as a filter, nq_ingress leaves the ifb hop to the
  // ifb filter (bpf_redirect() to an ifb is dropped on 6.1).
  skel->bss->ifb_by_filter = 1;
  std::vector<LegacyAttachment> done;
  // Removes what we attached, and a clsact we created (an entry with
  // priority 0 names only the qdisc); the error is what to report.
  const auto roll_back = [&](Error err) -> Status {
    std::vector<LegacyAttachment> undo = done;
    if (created) undo.push_back({kParentEgress, 0, 0, true, target});
    (void)remove_legacy(undo);  // best effort
    skel->bss->ifb_by_filter = 0;
    return err;
  };

  struct Hook {
    bpf_program* prog;
    uint32_t parent;
    bpf_tc_attach_point point;
  };
  const Hook hooks[] = {{skel->progs.nq_egress, kParentEgress, BPF_TC_EGRESS},
                        {skel->progs.nq_ingress, kParentIngress, BPF_TC_INGRESS}};
  for (const Hook& h : hooks) {
    hook.attach_point = h.point;
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.prog_fd = bpf_program__fd(h.prog);
    opts.handle = kLegacyHandle;
    opts.priority = kLegacyPriority;
    // No BPF_TC_F_REPLACE: an existing filter at our priority belongs to an
    // incarnation that was not reconciled, and silently taking it over would
    // hide that.
    if ((rc = bpf_tc_attach(&hook, &opts)) < 0) {
      const std::string where = std::string(h.point == BPF_TC_EGRESS ? "egress" : "ingress") +
                                " filter on ifindex " + std::to_string(target);
      return roll_back(rc == -EEXIST ? Error::from_errno(
                                           EEXIST, "a nodequake " + where + " (priority " +
                                                       hex(kLegacyPriority) +
                                                       ") already exists; remove_legacy() it first")
                                     : Error::from_errno(-rc, "attach " + where));
    }
    done.push_back({h.parent, kLegacyPriority, kLegacyHandle, created, target});
  }
  tc_sock.emplace(std::move(sock));
  ifindex = target;
  // Rules applied before the attach may already name an ifb.
  if (config.ifb_ifindex != 0) {
    if (Status st = point_ifb_filter(config.ifb_ifindex); !st.ok()) {
      tc_sock.reset();
      ifb_filter_target = 0;
      ifindex = 0;
      return roll_back(std::move(st).error());
    }
  }
  legacy = std::move(done);
  mode = AttachMode::kLegacyTc;
  return ok();
}

Status NetfaultProgram::Impl::point_ifb_filter(uint32_t ifb) {
  if (ifb == ifb_filter_target) return ok();
  if (!tc_sock) return Error::internal("the ifb filter needs the socket attach() opens");
  const bool remove = ifb == 0;
  NQ_ASSIGN_OR_RETURN(MsgPtr msg,
                      ifb_filter_request(remove ? RTM_DELTFILTER : RTM_NEWTFILTER,
                                         remove ? 0 : NLM_F_CREATE | NLM_F_REPLACE, ifindex,
                                         bpf_program__fd(skel->progs.nq_ingress_ifb), ifb));
  const std::string what = remove ? "remove the ifb filter of ifindex " + std::to_string(ifindex)
                                  : "point the ifb filter of ifindex " + std::to_string(ifindex) +
                                        " at ifindex " + std::to_string(ifb);
  if (Status st = transact(*tc_sock, msg.get(), what);
      !st.ok() && !(remove && gone(st.error().sys_errno())))
    return st;
  ifb_filter_target = ifb;
  return ok();
}

Status NetfaultProgram::detach() {
  switch (impl_->mode) {
    case AttachMode::kNone:
      return ok();
    case AttachMode::kTcx:
      impl_->ingress_link.reset();
      impl_->egress_link.reset();
      break;
    case AttachMode::kLegacyTc:
      NQ_TRY(remove_legacy(impl_->legacy));
      impl_->legacy.clear();
      impl_->tc_sock.reset();
      impl_->ifb_filter_target = 0;
      impl_->skel->bss->ifb_by_filter = 0;
      break;
  }
  impl_->mode = AttachMode::kNone;
  impl_->ifindex = 0;
  return ok();
}

Status NetfaultProgram::remove_legacy(const std::vector<LegacyAttachment>& attachments) {
  if (attachments.empty()) return ok();
  NQ_ASSIGN_OR_RETURN(NlSocket sock, NlSocket::open_route());
  std::set<int> created;
  for (const LegacyAttachment& a : attachments) {
    if (a.clsact_created) created.insert(a.ifindex);
    if (a.priority == 0) continue;  // marks a bare clsact (attach rollback)
    NQ_ASSIGN_OR_RETURN(ClsactState state, clsact_state(sock, a.ifindex));
    // Without the qdisc (or the device) the filter went with it; the kernel
    // would answer EINVAL, not ENOENT, for a filter on a missing qdisc.
    if (!state.present && (a.parent == kParentEgress || a.parent == kParentIngress)) continue;
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = a.ifindex;
    if (a.parent == kParentEgress) {
      hook.attach_point = BPF_TC_EGRESS;
    } else if (a.parent == kParentIngress) {
      hook.attach_point = BPF_TC_INGRESS;
    } else {
      hook.attach_point = BPF_TC_CUSTOM;
      hook.parent = a.parent;
    }
    const auto remove = [&](uint32_t priority) -> Status {
      bpf_tc_opts opts{};
      opts.sz = sizeof(opts);
      opts.handle = a.handle;
      opts.priority = priority;
      if (int rc = bpf_tc_detach(&hook, &opts); rc < 0 && !gone(-rc))
        return Error::from_errno(-rc, "remove tc filter priority " + hex(priority) + " parent " +
                                          hex(a.parent) + " of ifindex " +
                                          std::to_string(a.ifindex));
      return ok();
    };
    // The ifb filter first: without the program's filter before it, it
    // would read whatever an earlier layer left in skb->cb.
    if (a.parent == kParentIngress && a.priority == kLegacyPriority)
      NQ_TRY(remove(kLegacyIfbPriority));
    NQ_TRY(remove(a.priority));
  }
  for (int ifindex : created) {
    NQ_ASSIGN_OR_RETURN(ClsactState state, clsact_state(sock, ifindex));
    // Someone else's filters keep the qdisc they now depend on.
    if (!state.present || state.filters > 0) continue;
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    if (int rc = bpf_tc_hook_destroy(&hook); rc < 0 && !gone(-rc))
      return Error::from_errno(-rc, "remove clsact qdisc of ifindex " + std::to_string(ifindex));
  }
  return ok();
}

NetfaultProgram::AttachMode NetfaultProgram::mode() const noexcept {
  return impl_->mode;
}

int NetfaultProgram::ifindex() const noexcept {
  return impl_->ifindex;
}

std::vector<NetfaultProgram::LegacyAttachment> NetfaultProgram::legacy() const {
  return impl_->legacy;
}

Status NetfaultProgram::apply(const CompiledRules& next) {
  // As clsact filters: the ifb filter leads to next's ifb before the rules
  // can pick packets for it, and goes once no ifb is left.
  const bool ifb_filter = impl_->mode == AttachMode::kLegacyTc;
  const uint32_t ifb = next.config.ifb_ifindex;
  if (ifb_filter && ifb != 0) {
    if (Status st = impl_->point_ifb_filter(ifb); !st.ok())
      return std::move(st).error().wrapped("apply netfault rules");
  }
  if (!impl_->current) {
    NQ_ASSIGN_OR_RETURN(CompiledRules now, read_maps());
    impl_->current = std::move(now);
  }
  for (const MapOp& op : diff_rules(*impl_->current, next)) {
    if (Status st = impl_->execute(op); !st.ok()) {
      impl_->current.reset();
      return std::move(st).error().wrapped("apply netfault rules");
    }
  }
  impl_->current = next;
  if (ifb_filter && ifb == 0) {
    if (Status st = impl_->point_ifb_filter(0); !st.ok())
      return std::move(st).error().wrapped("apply netfault rules");
  }
  return ok();
}

Status NetfaultProgram::Impl::execute(const MapOp& op) {
  const auto update = [](int fd, const void* key, const void* value, const char* what) -> Status {
    if (bpf_map_update_elem(fd, key, value, BPF_ANY) != 0) return Error::from_errno(errno, what);
    return ok();
  };
  return std::visit(
      Overloaded{
          [&](const op::LpmUpdate& o) -> Status {
            const bool v4 = o.trie == Trie::kRemote4 || o.trie == Trie::kLocal4;
            if (v4) {
              const auto key = lpm_key<nq_lpm4_key>(o.prefix);
              return update(trie_fd(o.trie), &key, &o.mask, "update IPv4 LPM entry");
            }
            const auto key = lpm_key<nq_lpm6_key>(o.prefix);
            return update(trie_fd(o.trie), &key, &o.mask, "update IPv6 LPM entry");
          },
          [&](const op::LpmDelete& o) -> Status {
            const bool v4 = o.trie == Trie::kRemote4 || o.trie == Trie::kLocal4;
            const auto k4 = lpm_key<nq_lpm4_key>(o.prefix);
            const auto k6 = lpm_key<nq_lpm6_key>(o.prefix);
            const void* key = v4 ? static_cast<const void*>(&k4) : &k6;
            if (bpf_map_delete_elem(trie_fd(o.trie), key) != 0 && errno != ENOENT)
              return Error::from_errno(errno, "delete LPM entry");
            return ok();
          },
          [&](const op::RuleUpdate& o) -> Status {
            return update(map_fd(skel->maps.nq_rules), &o.slot, &o.rule, "write rule slot");
          },
          [&](const op::ClearSlotState& o) -> Status { return clear_slot_state(o.slot); },
          [&](const op::ConfigUpdate& o) -> Status {
            const uint32_t zero = 0;
            return update(map_fd(skel->maps.nq_config), &zero, &o.config, "write config");
          },
      },
      op);
}

Status NetfaultProgram::Impl::clear_slot_state(uint32_t slot) {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return Error::from_errno(-ncpus, "count possible CPUs");
  const std::vector<nq_stats> zeros(static_cast<size_t>(ncpus));
  if (bpf_map_update_elem(map_fd(skel->maps.nq_stats), &slot, zeros.data(), BPF_ANY) != 0)
    return Error::from_errno(errno, "reset counters of slot " + std::to_string(slot));

  // Collect first, delete after: deleting under the iterator restarts it.
  const int fd = map_fd(skel->maps.nq_flows);
  std::vector<nq_flow_key> doomed;
  nq_flow_key prev{}, next{};
  bool first = true;
  for (int n = 0; n < 2 * NQ_MAX_FLOWS; ++n) {
    if (bpf_map_get_next_key(fd, first ? nullptr : &prev, &next) != 0) {
      if (errno == ENOENT) break;
      return Error::from_errno(errno, "iterate flow records");
    }
    if (next.slot == slot) doomed.push_back(next);
    prev = next;
    first = false;
  }
  for (const nq_flow_key& k : doomed) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
      return Error::from_errno(errno, "delete flow record of slot " + std::to_string(slot));
  }
  return ok();
}

Result<CompiledRules> NetfaultProgram::read_maps() const {
  CompiledRules out;
  const uint32_t zero = 0;
  if (bpf_map_lookup_elem(impl_->map_fd(impl_->skel->maps.nq_config), &zero, &out.config) != 0)
    return Error::from_errno(errno, "read config");
  for (uint32_t slot = 0; slot < kMaxRules; ++slot) {
    if (!(out.config.active & (1U << slot))) continue;
    nq_rule r{};
    if (bpf_map_lookup_elem(impl_->map_fd(impl_->skel->maps.nq_rules), &slot, &r) != 0)
      return Error::from_errno(errno, "read rule slot " + std::to_string(slot));
    out.rules[slot] = r;
  }
  const auto idx = [](Trie t) { return static_cast<size_t>(t); };
  NQ_TRY(read_trie<nq_lpm4_key>(impl_->trie_fd(Trie::kRemote4), out.tries[idx(Trie::kRemote4)]));
  NQ_TRY(read_trie<nq_lpm6_key>(impl_->trie_fd(Trie::kRemote6), out.tries[idx(Trie::kRemote6)]));
  NQ_TRY(read_trie<nq_lpm4_key>(impl_->trie_fd(Trie::kLocal4), out.tries[idx(Trie::kLocal4)]));
  NQ_TRY(read_trie<nq_lpm6_key>(impl_->trie_fd(Trie::kLocal6), out.tries[idx(Trie::kLocal6)]));
  return out;
}

Result<nq_stats> NetfaultProgram::stats(uint32_t slot) const {
  if (slot >= kMaxRules)
    return Error::invalid_argument(
        "slot", std::to_string(slot) + " is not below " + std::to_string(kMaxRules));
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return Error::from_errno(-ncpus, "count possible CPUs");
  std::vector<nq_stats> per_cpu(static_cast<size_t>(ncpus));
  if (bpf_map_lookup_elem(impl_->map_fd(impl_->skel->maps.nq_stats), &slot, per_cpu.data()) != 0)
    return Error::from_errno(errno, "read counters of slot " + std::to_string(slot));
  nq_stats sum{};
  for (const nq_stats& s : per_cpu) {
    sum.matched += s.matched;
    sum.dropped += s.dropped;
    sum.recorded += s.recorded;
    sum.shaped += s.shaped;
  }
  return sum;
}

}  // namespace nq::net
