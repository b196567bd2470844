#include "agent/net/tc_dump.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "agent/net/tc_wire.h"

namespace nq::net {
namespace {

using CbPtr = std::unique_ptr<nl_cb, NlFree<nl_cb_put>>;

// ------------------------------------------------------------ normalisation

// Out-only counters inside an action's parameters: every tc_gen-based action
// starts with {index, capab, action, refcnt, bindcnt}.
constexpr size_t kGenRefcntOffset = 12;
constexpr size_t kGenCountersEnd = 20;
// struct tc_police: index, action, limit, burst, mtu, rate, peakrate, refcnt, bindcnt.
constexpr size_t kPoliceRefcntOffset = 44;
constexpr size_t kPoliceCountersEnd = 52;

void zero(std::vector<uint8_t>& v, size_t from, size_t to) {
  if (v.size() >= to) std::fill(v.begin() + from, v.begin() + to, 0);
}

std::vector<uint8_t> normalize_police(std::span<const uint8_t> data) {
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(data)) {
    if (a.type == TCA_POLICE_TM || a.type == TCA_POLICE_PAD) continue;
    std::vector<uint8_t> v(a.data.begin(), a.data.end());
    if (a.type == TCA_POLICE_TBF) zero(v, kPoliceRefcntOffset, kPoliceCountersEnd);
    out.put(a.raw_type, v);
  }
  return out.take();
}

std::vector<uint8_t> normalize_action_options(const std::string& kind,
                                              std::span<const uint8_t> data) {
  if (kind == "police") return normalize_police(data);
  // Most actions number their attributes {TM = 1, PARMS = 2}; these swap them.
  const bool swapped = kind == "nat" || kind == "connmark" || kind == "ct";
  const uint16_t tm = swapped ? 2 : 1;
  const uint16_t parms = swapped ? 1 : 2;
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(data)) {
    if (a.type == tm) continue;  // install / last-use timestamps
    std::vector<uint8_t> v(a.data.begin(), a.data.end());
    if (a.type == parms) zero(v, kGenRefcntOffset, kGenCountersEnd);
    out.put(a.raw_type, v);
  }
  return out.take();
}

std::vector<uint8_t> normalize_action(std::span<const uint8_t> data) {
  std::string kind;
  for (const WireAttr& a : parse_attrs(data))
    if (a.type == TCA_ACT_KIND) kind = attr_string(a.data);
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(data)) {
    switch (a.type) {
      case TCA_ACT_STATS:
      case TCA_ACT_PAD:
      case TCA_ACT_USED_HW_STATS:
      case TCA_ACT_IN_HW_COUNT:
        continue;
      case TCA_ACT_OPTIONS:
        out.put(a.raw_type, normalize_action_options(kind, a.data));
        continue;
      default:
        out.put(a.raw_type, a.data);
    }
  }
  return out.take();
}

// TCA_*_ACT: one nested attribute per action, numbered by its order.
std::vector<uint8_t> normalize_actions(std::span<const uint8_t> data) {
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(data)) out.put(a.raw_type, normalize_action(a.data));
  return out.take();
}

struct FilterLayout {
  const char* kind;
  uint16_t act;
  uint16_t police;    // 0: none
  uint16_t counters;  // 0: none
  uint16_t flags;     // TCA_CLS_FLAGS_* attribute, 0: none
};

// Classifiers whose options are attribute lists with actions and counters.
constexpr FilterLayout kFilterLayouts[] = {
    {"u32", TCA_U32_ACT, TCA_U32_POLICE, TCA_U32_PCNT, TCA_U32_FLAGS},
    {"basic", TCA_BASIC_ACT, TCA_BASIC_POLICE, TCA_BASIC_PCNT, 0},
    {"matchall", TCA_MATCHALL_ACT, 0, TCA_MATCHALL_PCNT, TCA_MATCHALL_FLAGS},
    {"flower", TCA_FLOWER_ACT, 0, TCA_FLOWER_IN_HW_COUNT, TCA_FLOWER_FLAGS},
    {"fw", TCA_FW_ACT, TCA_FW_POLICE, 0, 0},
    {"bpf", TCA_BPF_ACT, TCA_BPF_POLICE, 0, TCA_BPF_FLAGS_GEN},
};

// Flags the kernel reports but refuses in a request ("Invalid filter flags"):
// whether the filter is (not) offloaded to hardware.
constexpr uint32_t kClsStatusFlags = TCA_CLS_FLAGS_IN_HW | TCA_CLS_FLAGS_NOT_IN_HW;

std::vector<uint8_t> normalize_filter_options(const std::string& kind,
                                              std::span<const uint8_t> data) {
  const FilterLayout* layout = nullptr;
  for (const FilterLayout& l : kFilterLayouts)
    if (kind == l.kind) layout = &l;
  if (layout == nullptr) return {data.begin(), data.end()};
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(data)) {
    if (layout->counters != 0 && a.type == layout->counters) continue;
    if (a.type == layout->act) {
      out.put(a.raw_type, normalize_actions(a.data));
    } else if (layout->police != 0 && a.type == layout->police) {
      out.put(a.raw_type, normalize_police(a.data));
    } else if (layout->flags != 0 && a.type == layout->flags && a.data.size() == 4) {
      uint32_t flags;
      std::memcpy(&flags, a.data.data(), sizeof(flags));
      flags &= ~kClsStatusFlags;
      out.put(a.raw_type, &flags, sizeof(flags));
    } else if (kind == "u32" && a.type == TCA_U32_MARK) {
      // struct tc_u32_mark {val, mask, success}: success counts hits.
      std::vector<uint8_t> v(a.data.begin(), a.data.end());
      zero(v, 8, 12);
      out.put(a.raw_type, v);
    } else {
      out.put(a.raw_type, a.data);
    }
  }
  return out.take();
}

std::vector<uint8_t> normalize_options(const TcObject& obj, std::span<const uint8_t> data) {
  if (obj.type == RTM_NEWTFILTER) return normalize_filter_options(obj.kind, data);
  if (obj.type == RTM_NEWQDISC && obj.kind == "htb") {
    AttrWriter out;
    for (const WireAttr& a : parse_attrs(data)) {
      std::vector<uint8_t> v(a.data.begin(), a.data.end());
      if (a.type == TCA_HTB_INIT && v.size() >= sizeof(tc_htb_glob)) {
        tc_htb_glob glob;
        std::memcpy(&glob, v.data(), sizeof(glob));
        // Dumps say version HTB_VER (0x30011) but creation insists on
        // HTB_VER >> 16 (3): keep the form the kernel accepts back.
        if (glob.version > 0xffff) glob.version >>= 16;
        glob.direct_pkts = 0;  // counts packets that took the direct path
        std::memcpy(v.data(), &glob, sizeof(glob));
      }
      out.put(a.raw_type, v);
    }
    return out.take();
  }
  // Everything else (netem's struct-then-attributes layout included) has no
  // counters in its options: kept byte for byte.
  return {data.begin(), data.end()};
}

// ------------------------------------------------------------ kernel I/O

struct AckState {
  bool done = false;
  int error = 0;  // errno from the kernel
  std::string ext_msg;
};

int on_ack(nl_msg*, void* arg) {
  static_cast<AckState*>(arg)->done = true;
  return NL_STOP;
}

// Reads the errno and, with NETLINK_EXT_ACK, the kernel's explanation.
int on_error(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* st = static_cast<AckState*>(arg);
  st->done = true;
  st->error = -err->error;
  const auto* hdr =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const uint8_t*>(err) - NLMSG_HDRLEN);
  if (hdr->nlmsg_flags & NLM_F_ACK_TLVS) {
    size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - NLMSG_HDRLEN;
    if (off < hdr->nlmsg_len) {
      std::span<const uint8_t> tlvs(reinterpret_cast<const uint8_t*>(hdr) + NLMSG_ALIGN(off),
                                    hdr->nlmsg_len - NLMSG_ALIGN(off));
      for (const WireAttr& a : parse_attrs(tlvs))
        if (a.type == NLMSGERR_ATTR_MSG) st->ext_msg = attr_string(a.data);
    }
  }
  return NL_STOP;
}

// Asks for the kernel's error text and for errors without our request echoed
// back (a netem distribution table is 8 KiB). Failing is harmless: errors
// then come without the text.
void enable_ext_ack(NlSocket& sock) {
  const int fd = nl_socket_get_fd(sock.get());
  const int one = 1;
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
}

Error kernel_error(const AckState& st, std::string_view context) {
  std::string ctx(context);
  if (!st.ext_msg.empty()) ctx += " (kernel: " + st.ext_msg + ")";
  return Error::from_errno(st.error, ctx);
}

struct DumpState {
  AckState ack;
  std::vector<std::vector<uint8_t>> messages;
};

int on_dump_message(nl_msg* msg, void* arg) {
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  const auto* p = reinterpret_cast<const uint8_t*>(hdr);
  static_cast<DumpState*>(arg)->messages.emplace_back(p, p + hdr->nlmsg_len);
  return NL_OK;
}

Result<std::vector<std::vector<uint8_t>>> dump_raw(NlSocket& sock, int type, const tcmsg& req,
                                                   const std::string& what) {
  enable_ext_ack(sock);
  // A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried:
  // its content may mix old and new state.
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    MsgPtr msg(nlmsg_alloc_simple(type, NLM_F_DUMP));
    if (!msg) return Error::from_errno(ENOMEM, "nlmsg_alloc");
    if (int rc = nlmsg_append(msg.get(), const_cast<tcmsg*>(&req), sizeof(req), NLMSG_ALIGNTO);
        rc < 0)
      return Error::from_netlink(rc, what);
    if (int rc = nl_send_auto(sock.get(), msg.get()); rc < 0) return Error::from_netlink(rc, what);
    CbPtr cb(nl_cb_clone(nl_socket_get_cb(sock.get())));
    if (!cb) return Error::from_errno(ENOMEM, "nl_cb_clone");
    DumpState st;
    nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_dump_message, &st);
    nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &st.ack);
    const int rc = nl_recvmsgs(sock.get(), cb.get());
    if (st.ack.error != 0) return kernel_error(st.ack, what);
    if (rc == -NLE_DUMP_INTR && attempt < kAttempts) continue;
    if (rc < 0) return Error::from_netlink(rc, what);
    return std::move(st.messages);
  }
}

Result<std::vector<TcObject>> parse_all(const std::vector<std::vector<uint8_t>>& raw, int ifindex) {
  std::vector<TcObject> out;
  for (const auto& m : raw) {
    NQ_ASSIGN_OR_RETURN(TcObject obj, parse_tc_message(m));
    if (ifindex != 0 && obj.ifindex != ifindex) continue;
    out.push_back(normalized(std::move(obj)));
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------ messages

std::string handle_str(uint32_t h) {
  if (h == TC_H_ROOT) return "root";
  if (h == TC_H_INGRESS) return "ingress";
  if (h == TC_H_UNSPEC) return "none";
  char buf[24];
  if (TC_H_MIN(h) == 0)
    std::snprintf(buf, sizeof(buf), "%x:", TC_H_MAJ(h) >> 16);
  else if (TC_H_MAJ(h) == 0)
    std::snprintf(buf, sizeof(buf), ":%x", TC_H_MIN(h));
  else
    std::snprintf(buf, sizeof(buf), "%x:%x", TC_H_MAJ(h) >> 16, TC_H_MIN(h));
  return buf;
}

std::string describe(const TcObject& obj) {
  char buf[160];
  switch (obj.type) {
    case RTM_NEWQDISC:
      std::snprintf(buf, sizeof(buf), "qdisc %s %s parent %s", obj.kind.c_str(),
                    handle_str(obj.handle).c_str(), handle_str(obj.parent).c_str());
      break;
    case RTM_NEWTCLASS:
      std::snprintf(buf, sizeof(buf), "class %s %s parent %s", obj.kind.c_str(),
                    handle_str(obj.handle).c_str(), handle_str(obj.parent).c_str());
      break;
    default:
      std::snprintf(buf, sizeof(buf), "filter %s parent %s pref %u protocol 0x%04x handle 0x%x",
                    obj.kind.c_str(), handle_str(obj.parent).c_str(), TC_H_MAJ(obj.info) >> 16,
                    ntohs(static_cast<uint16_t>(TC_H_MIN(obj.info))), obj.handle);
  }
  return buf;
}

Result<TcObject> parse_tc_message(std::span<const uint8_t> message) {
  const size_t header = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(tcmsg));
  if (message.size() < header) return Error::status(Code::kDataLoss, "tc message too short");
  nlmsghdr nlh;
  std::memcpy(&nlh, message.data(), sizeof(nlh));
  if (nlh.nlmsg_len < header || nlh.nlmsg_len > message.size())
    return Error::status(Code::kDataLoss, "tc message length does not match its header");
  if (nlh.nlmsg_type != RTM_NEWQDISC && nlh.nlmsg_type != RTM_NEWTCLASS &&
      nlh.nlmsg_type != RTM_NEWTFILTER)
    return Error::status(Code::kDataLoss, "not a qdisc, class or filter message (type " +
                                              std::to_string(nlh.nlmsg_type) + ")");
  tcmsg tcm;
  std::memcpy(&tcm, message.data() + NLMSG_HDRLEN, sizeof(tcm));
  TcObject obj;
  obj.type = nlh.nlmsg_type;
  obj.ifindex = tcm.tcm_ifindex;
  obj.handle = tcm.tcm_handle;
  obj.parent = tcm.tcm_parent;
  obj.info = tcm.tcm_info;
  obj.attrs.assign(message.begin() + header, message.begin() + nlh.nlmsg_len);
  if (!attrs_well_formed(obj.attrs))
    return Error::status(Code::kDataLoss, "tc message has malformed attributes");
  for (const WireAttr& a : parse_attrs(obj.attrs))
    if (a.type == TCA_KIND) obj.kind = attr_string(a.data);
  if (obj.kind.empty()) return Error::status(Code::kDataLoss, "tc message without TCA_KIND");
  return obj;
}

std::vector<uint8_t> encode_tc_message(const TcObject& obj) {
  const size_t header = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(tcmsg));
  // Sized once and filled with memcpy (GCC 12 misreads an insert() here as
  // out of bounds, bug 107852).
  std::vector<uint8_t> out(header + obj.attrs.size(), 0);
  nlmsghdr nlh{};
  nlh.nlmsg_len = static_cast<uint32_t>(header + obj.attrs.size());
  nlh.nlmsg_type = obj.type;
  std::memcpy(out.data(), &nlh, sizeof(nlh));
  tcmsg tcm{};
  tcm.tcm_family = AF_UNSPEC;
  tcm.tcm_ifindex = obj.ifindex;
  tcm.tcm_handle = obj.handle;
  tcm.tcm_parent = obj.parent;
  tcm.tcm_info = obj.info;
  std::memcpy(out.data() + NLMSG_HDRLEN, &tcm, sizeof(tcm));
  if (!obj.attrs.empty()) std::memcpy(out.data() + header, obj.attrs.data(), obj.attrs.size());
  return out;
}

TcObject normalized(TcObject obj) {
  AttrWriter out;
  for (const WireAttr& a : parse_attrs(obj.attrs)) {
    switch (a.type) {
      case TCA_KIND:
      case TCA_STAB:
      case TCA_CHAIN:
      case TCA_INGRESS_BLOCK:
      case TCA_EGRESS_BLOCK:
      case TCA_RATE:
        out.put(a.raw_type, a.data);
        break;
      case TCA_OPTIONS:
        out.put(a.raw_type, normalize_options(obj, a.data));
        break;
      default:  // statistics, counters, dump-only flags
        break;
    }
  }
  obj.attrs = out.take();
  return obj;
}

std::span<const uint8_t> find_attr(const TcObject& obj, uint16_t type) {
  for (const WireAttr& a : parse_attrs(obj.attrs))
    if (a.type == type) return a.data;
  return {};
}

// ------------------------------------------------------------ kernel I/O

Status transact(NlSocket& sock, nl_msg* msg, std::string_view context) {
  enable_ext_ack(sock);
  if (int rc = nl_send_auto(sock.get(), msg); rc < 0) return Error::from_netlink(rc, context);
  CbPtr cb(nl_cb_clone(nl_socket_get_cb(sock.get())));
  if (!cb) return Error::from_errno(ENOMEM, "nl_cb_clone");
  AckState st;
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_ack, &st);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &st);
  while (!st.done) {
    const int rc = nl_recvmsgs(sock.get(), cb.get());
    if (st.error != 0) return kernel_error(st, context);
    if (rc < 0) return Error::from_netlink(rc, context);
  }
  return ok();
}

Result<std::vector<TcObject>> dump_qdiscs(NlSocket& sock, int ifindex) {
  tcmsg req{};
  req.tcm_family = AF_UNSPEC;
  // The kernel dumps every device's qdiscs regardless of tcm_ifindex.
  NQ_ASSIGN_OR_RETURN(auto raw, dump_raw(sock, RTM_GETQDISC, req, "dump qdiscs"));
  return parse_all(raw, ifindex);
}

Result<std::vector<TcObject>> dump_classes(NlSocket& sock, int ifindex) {
  if (ifindex <= 0) return Error::invalid_argument("ifindex", "classes are dumped per device");
  tcmsg req{};
  req.tcm_family = AF_UNSPEC;
  req.tcm_ifindex = ifindex;
  NQ_ASSIGN_OR_RETURN(auto raw, dump_raw(sock, RTM_GETTCLASS, req, "dump classes"));
  return parse_all(raw, ifindex);
}

Result<std::vector<TcObject>> dump_filters(NlSocket& sock, int ifindex, uint32_t parent) {
  if (ifindex <= 0) return Error::invalid_argument("ifindex", "filters are dumped per device");
  tcmsg req{};
  req.tcm_family = AF_UNSPEC;
  req.tcm_ifindex = ifindex;
  req.tcm_parent = parent;
  NQ_ASSIGN_OR_RETURN(auto raw,
                      dump_raw(sock, RTM_GETTFILTER, req, "dump filters at " + handle_str(parent)));
  return parse_all(raw, ifindex);
}

Result<std::vector<TcObject>> dump_device(NlSocket& sock, int ifindex) {
  NQ_ASSIGN_OR_RETURN(std::vector<TcObject> out, dump_qdiscs(sock, ifindex));
  NQ_ASSIGN_OR_RETURN(std::vector<TcObject> classes, dump_classes(sock, ifindex));
  // Filter attachment points: every qdisc with a handle (handle 0 would mean
  // "the root" to the kernel), clsact's two hooks, and every class.
  std::vector<uint32_t> parents;
  for (const TcObject& q : out) {
    if (q.handle == 0) continue;
    parents.push_back(q.handle);
    if (q.kind == "clsact") {
      parents.push_back(TC_H_MAKE(q.handle, TC_H_MIN_INGRESS));
      parents.push_back(TC_H_MAKE(q.handle, TC_H_MIN_EGRESS));
    }
  }
  for (const TcObject& c : classes) parents.push_back(c.handle);
  out.insert(out.end(), classes.begin(), classes.end());
  for (uint32_t parent : parents) {
    NQ_ASSIGN_OR_RETURN(std::vector<TcObject> filters, dump_filters(sock, ifindex, parent));
    out.insert(out.end(), filters.begin(), filters.end());
  }
  return out;
}

}  // namespace nq::net
