/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * delayline ABI: what delayline.bpf.c and the agent (agent/delay/) share
 * beyond the netfault rule maps it reuses (netfault.h). The only definition
 * of these structs; userspace static_asserts their layout.
 */
#ifndef NODEQUAKE_EBPF_DELAYLINE_H
#define NODEQUAKE_EBPF_DELAYLINE_H

#include <linux/types.h>

/*
 * The line's live state, one global in .bss (libbpf mmaps it, so the
 * engine's heartbeat is a plain store, not a syscall per beat).
 */
struct nq_dl_state {
	/*
	 * CLOCK_MONOTONIC ns of the engine's last beat (bpf_ktime_get_ns()
	 * reads the same clock). Older than stale_ns: matching packets pass
	 * undelayed, as if the line were not there.
	 */
	__u64 heartbeat_ns;
	__u32 tap_ifindex;  /* where matching packets go; 0 = line off */
	__u32 veth_ifindex; /* where frames the engine writes back leave */
	__u32 loss;         /* drop probability, 0..UINT32_MAX */
	__u32 redirect;     /* 0: loss only, matching packets are not delayed */
};

/* Counters (per-CPU array dl_stats, one entry). */
struct nq_dl_stats {
	__u64 matched;    /* packets in scope */
	__u64 redirected; /* handed to the engine (the TAP) */
	__u64 lost;       /* dropped by the loss roll */
	__u64 bypassed;   /* in scope but the heartbeat was stale */
	__u64 returned;   /* written back by the engine, sent out of the veth */
};

#endif /* NODEQUAKE_EBPF_DELAYLINE_H */
