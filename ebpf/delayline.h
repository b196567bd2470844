/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * delayline ABI: what delayline.bpf.c and the agent (agent/delay/) share
 * beyond the netfault rule maps it reuses (netfault.h). The only definition
 * of these structs; userspace static_asserts their layout.
 */
#ifndef NODEQUAKE_EBPF_DELAYLINE_H
#define NODEQUAKE_EBPF_DELAYLINE_H

#include <linux/types.h>

/* Directions, indexed like nq_config.candidates (NQ_IDX_EGRESS/INGRESS). */
#define NQ_DL_DIRS 2

/*
 * skb->mark of a frame the engine wrote into the ingress TAP, on its way
 * back into the pod interface's ingress (dl_tap_ingress sets it, dl_ingress
 * clears it). Sound because a packet arriving from the veth peer always
 * carries mark 0: the peer lives in another namespace, and crossing
 * namespaces scrubs the mark (skb_scrub_packet(skb, xnet=true) in veth's
 * __dev_forward_skb). skb->ingress_ifindex cannot tell: a re-received skb
 * gets the pod interface's.
 */
#define NQ_DL_RETURN_MARK 0x4e51d100
/*
 * A duplicate on its second pass through the pod interface's hook (it was
 * cloned there with bpf_clone_redirect()): skb->mark on ingress (0 for
 * everything else, see above), skb->tc_index on egress, where the mark is
 * the pod's own. tc_index is 16 bits; nothing in the stack sets it since
 * dsmark and cls_tcindex were removed (6.3), so the pod's packets carry 0.
 */
#define NQ_DL_DUP_MARK 0x4e51d101
#define NQ_DL_DUP_TC_INDEX 0xd1d1

/*
 * One direction of the line. Probabilities are 0..UINT32_MAX (netem's
 * scale); a correlation is netem's rho on the same scale.
 */
struct nq_dl_dir {
	/*
	 * CLOCK_MONOTONIC ns of this direction's engine's last beat
	 * (bpf_ktime_get_ns() reads the same clock). Older than stale_ns:
	 * packets in scope pass untouched, as if the line were not there.
	 */
	__u64 heartbeat_ns;
	__u32 tap_ifindex; /* where matching packets go; 0 = direction off */
	__u32 redirect;    /* 0: loss/duplicate/corrupt only, no delay */
	__u32 loss;
	__u32 loss_corr;
	__u32 duplicate;
	__u32 duplicate_corr;
	__u32 corrupt;
	__u32 corrupt_corr;
};

/*
 * The line's live state, one global in .bss (libbpf mmaps it, so the
 * engines' heartbeats are plain stores, not a syscall per beat).
 */
struct nq_dl_state {
	struct nq_dl_dir dir[NQ_DL_DIRS];
	__u32 veth_ifindex; /* the pod interface: where frames written back go */
	__u32 pad;
};

/*
 * netem's crndstate.last of a direction's three rolls, in .bss. Written by
 * the program only; here because the skeleton names the type. Shared by all
 * CPUs like a qdisc's: netem updates it under the qdisc lock, here two CPUs
 * may race and one update is lost, which only restarts the chain from the
 * other's value (a slightly weaker correlation, never a wrong rate).
 */
struct nq_dl_crnd {
	__u64 loss;
	__u64 duplicate;
	__u64 corrupt;
};

/* Counters (per-CPU array dl_stats, one entry per direction). */
struct nq_dl_stats {
	__u64 matched;    /* packets in scope (duplicates' second pass included) */
	__u64 redirected; /* handed to the engine (the TAP) */
	__u64 lost;       /* dropped by the loss roll */
	__u64 bypassed;   /* in scope but the heartbeat was stale */
	__u64 returned;   /* written back by the engine, sent on their way */
	__u64 duplicated; /* clones made by the duplicate roll */
	__u64 corrupted;  /* packets with one bit flipped */
};

#endif /* NODEQUAKE_EBPF_DELAYLINE_H */
