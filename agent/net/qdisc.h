// nodequake's qdisc tree on one interface: an HTB root whose unclassified
// traffic takes HTB's unshaped direct path, and one never-limiting HTB class
// per shaping fault with a netem or tbf leaf. Packets reach a fault's class
// through skb->priority = class id (set by the netfault BPF program; HTB
// honours a priority that names one of its leaf classes before any filter).
//
// The message builders are pure (bytes testable without privileges); the
// executors send them through the NlSocket, i.e. in that socket's namespace.
#pragma once

#include <cstdint>

#include "agent/net/netem.h"
#include "agent/net/netlink.h"
#include "common/result.h"

namespace nq::net {

// "NQ": the major of nodequake's root qdisc handle.
inline constexpr uint32_t kRootHandle = 0x4e510000;
// Leaf classes never limit: shaping is the leaf qdisc's job.
inline constexpr uint64_t kLeafClassRateBps = 100'000'000'000ULL;
// Explicit DRR quantum, so the kernel neither derives one from the rate
// (r2q) nor warns that it is too big. One GSO super-packet's worth.
inline constexpr uint32_t kLeafClassQuantum = 65536;
// Bytes a leaf class may send at once; irrelevant at 100 Gbit/s but the
// kernel wants a bucket.
inline constexpr uint32_t kLeafClassBurst = 262144;
// HTB's direct queue (unclassified traffic). Explicit because HTB otherwise
// copies the device's tx_queue_len, which is 0..32 on some virtual devices
// and would drop bursts of traffic nobody asked to shape.
inline constexpr uint32_t kDirectQueueLen = 1000;

// 0x4e51:<minor>
constexpr uint32_t class_id(uint32_t root_handle, uint16_t minor) {
  return (root_handle & 0xffff0000u) | minor;
}
// Leaf qdisc handle of class <minor>: <minor>:0. Majors are per device, and
// only our tree lives in the root, so the class minor is free as a major.
constexpr uint32_t leaf_handle(uint16_t minor) {
  return uint32_t{minor} << 16;
}
// Minors usable for leaves: not 0 (the qdisc itself), not our root's major,
// not ffff (ingress/clsact).
Status check_leaf_minor(uint32_t root_handle, uint16_t minor);

// ------------------------------------------------------------ message builders

// RTM_NEWQDISC htb at the root (NLM_F_CREATE | NLM_F_REPLACE), defcls 0.
Result<MsgPtr> build_htb_root(int ifindex, uint32_t handle);
// RTM_NEWTCLASS htb <root>:<minor> (NLM_F_CREATE: creates or updates).
Result<MsgPtr> build_leaf_class(int ifindex, uint32_t root_handle, uint16_t minor);
// RTM_NEWQDISC netem/tbf <minor>: under class <root>:<minor> (NLM_F_CREATE |
// NLM_F_REPLACE: grafted over the class's default pfifo, or updated).
Result<MsgPtr> build_leaf_qdisc(int ifindex, uint32_t root_handle, uint16_t minor,
                                const LeafSpec& spec);
// RTM_DELTCLASS <root>:<minor> (its leaf qdisc goes with it).
Result<MsgPtr> build_delete_class(int ifindex, uint32_t root_handle, uint16_t minor);
// RTM_DELQDISC of the root, only if its handle is `handle` (the kernel
// refuses with EINVAL otherwise, so a foreign root is never deleted).
Result<MsgPtr> build_delete_root(int ifindex, uint32_t handle);

// ------------------------------------------------------------ executors

// Whether the root qdisc of `ifindex` has `handle`.
Result<bool> root_is(NlSocket& sock, int ifindex, uint32_t handle);
// Puts our HTB root on `ifindex`, replacing (and so destroying) whatever root
// tree is there: snapshot it first. A no-op when the root is already ours,
// which keeps the leaves already installed.
Status install_root(NlSocket& sock, int ifindex, uint32_t handle);
// Creates (or updates) class <root>:<minor> and its leaf qdisc. Fails with
// FailedPrecondition when our root is not installed, or when a tbf bucket is
// smaller than one frame at the device's MTU (every full-size packet would be
// dropped); NotFound (from the kernel) when sch_netem/sch_tbf is missing.
Status add_leaf(NlSocket& sock, int ifindex, uint32_t root_handle, uint16_t minor,
                const LeafSpec& spec);
// Deletes class <root>:<minor>; ok when it, our root or the device is gone.
Status remove_leaf(NlSocket& sock, int ifindex, uint32_t root_handle, uint16_t minor);

}  // namespace nq::net
