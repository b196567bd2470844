// tc objects (qdiscs, classes, filters) as raw rtnetlink messages: dumping
// them from the kernel, a comparable normalised form without statistics, and
// request/ack with the kernel's extended-ack error text. Used by the qdisc
// snapshot/restore and by the tests' tc state capture.
#pragma once

#include <linux/rtnetlink.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/net/netlink.h"
#include "common/result.h"

namespace nq::net {

// One qdisc, class or filter: the tcmsg header fields plus its attributes.
struct TcObject {
  uint16_t type = 0;  // RTM_NEWQDISC, RTM_NEWTCLASS or RTM_NEWTFILTER
  int ifindex = 0;
  uint32_t handle = 0;
  uint32_t parent = 0;
  uint32_t info = 0;  // filters: priority << 16 | protocol; classes: leaf qdisc
  std::string kind;   // TCA_KIND
  // The attributes after the tcmsg header (netlink-aligned TLVs), TCA_KIND included.
  std::vector<uint8_t> attrs;
  bool operator==(const TcObject&) const = default;
};

// "qdisc htb 4e51: parent root", "filter u32 800::800 parent 1: pref 1 ..." for messages.
std::string describe(const TcObject& obj);
// "4e51:", "4e51:1", "root", "ingress", ... as tc prints handles.
std::string handle_str(uint32_t handle);

// Parses one rtnetlink tc message (a whole nlmsghdr); DataLoss when malformed.
Result<TcObject> parse_tc_message(std::span<const uint8_t> message);
// The message again, with flags, sequence number and port id zeroed.
std::vector<uint8_t> encode_tc_message(const TcObject& obj);

// Keeps what recreates the object (kind, options, size table, chain, shared
// blocks) and drops what the kernel reports about it: TCA_STATS*, TCA_XSTATS,
// TCA_FCNT, TCA_HW_OFFLOAD, ... plus the counters some kinds embed in their
// options (HTB's direct_pkts, u32/basic/matchall hit counters, action stats,
// timestamps and reference counts, filters' IN_HW/NOT_IN_HW flags). Two
// dumps of an unchanged object normalise to identical bytes, and the result
// is accepted back by the kernel as a request (HTB's dumped version 0x30011
// becomes the 3 that creation insists on).
TcObject normalized(TcObject obj);

// The value of a top-level attribute, if present.
std::span<const uint8_t> find_attr(const TcObject& obj, uint16_t type);

// ----------------------------------------------------------------- kernel I/O

// Sends `msg` (built elsewhere, still owned by the caller) and waits for the
// kernel's answer. Errors carry the errno and the kernel's extended-ack text,
// e.g. "add class 4e51:1: File exists (Exclusivity flag on, cannot modify)".
Status transact(NlSocket& sock, nl_msg* msg, std::string_view context);

// Every qdisc of `ifindex` (0: of every device), normalised, in dump order.
// Invisible qdiscs (the default leaves the kernel creates itself) are left out.
Result<std::vector<TcObject>> dump_qdiscs(NlSocket& sock, int ifindex);
Result<std::vector<TcObject>> dump_classes(NlSocket& sock, int ifindex);
// Filters attached at `parent` (a qdisc handle, a class id, or clsact's
// ingress/egress hook), every chain.
Result<std::vector<TcObject>> dump_filters(NlSocket& sock, int ifindex, uint32_t parent);
// Everything on a device: its qdiscs (root tree, ingress and clsact), their
// classes, and the filters at each of those.
Result<std::vector<TcObject>> dump_device(NlSocket& sock, int ifindex);

}  // namespace nq::net
