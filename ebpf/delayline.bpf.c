// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * delayline: latency, loss, duplication and corruption without sch_netem.
 * Programs around one TAP device per direction that the agent's delay
 * engines read and write (agent/delay/):
 *
 * egress (TO):
 *   pod stack -> eth0 egress [dl_egress] --bpf_redirect--> TAP --read()-->
 *   engine holds the frame until its due time --write()--> TAP ingress
 *   [dl_tap_ingress] --bpf_redirect--> eth0 egress [dl_egress: passes] -> peer
 * ingress (FROM):
 *   peer -> eth0 ingress [dl_ingress] --bpf_redirect--> TAP --read()--> engine
 *   --write()--> TAP ingress [dl_tap_ingress: mark] --bpf_redirect(INGRESS)-->
 *   eth0 ingress [dl_ingress: clears the mark, passes] -> pod stack
 *
 * All programs are attached through TCX links the agent process holds: a
 * killed agent takes the redirects (and its TAPs) with it, and traffic
 * flows again.
 *
 * Scope: the netfault rule maps, same layout and same compiler
 * (agent/net/rules.h), SHAPE rules in their directions; a packet in scope
 * of any active slot is taken. As in netfault.bpf.c the remote side is the
 * destination on egress and the source on ingress.
 *
 * Loop detection. Egress: a frame the engine wrote back reaches eth0's
 * egress again with skb->ingress_ifindex = the TAP (it was received there);
 * those pass (skb->mark is the pod's own to use). Ingress: a frame sent back
 * into eth0's ingress gets eth0's ingress_ifindex like any other, so the
 * TAP program marks it (NQ_DL_RETURN_MARK, see delayline.h for why that is
 * sound) and dl_ingress clears the mark again.
 *
 * Fail-safety beyond the links: each direction's engine stores a
 * CLOCK_MONOTONIC heartbeat in dl_state every few ms. When it is older than
 * stale_ns (the engine hangs, is stopped, or its process is frozen while
 * holding the links), packets pass untouched: not delayed, not dropped,
 * not duplicated, not corrupted.
 *
 * Loss, duplication and corruption are rolled here, in netem's order and
 * with netem's correlation (sch_netem.c: netem_enqueue(), get_crandom()),
 * before the redirect, so lost packets never cost the engine a read.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "delayline.h"
#include "netfault.h"
#include "rule_maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define IP_OFFSET 0x1fff
/* IPv6 extension headers walked before giving up on the ports. */
#define DL_IPV6_EXT_MAX 4

/*
 * Load-time tunables (rodata). l2_hdr_len: bytes before the IP header
 * (Ethernet on a veth). stale_ns: heartbeat age beyond which the line is
 * bypassed; the engine beats about ten times as often.
 */
const volatile __u32 l2_hdr_len = ETH_HLEN;
const volatile __u64 stale_ns = 100000000ULL;

/* Written by the agent through the mmapped .bss (see delayline.h). */
struct nq_dl_state dl_state;

/* netem's correlation state per direction (delayline.h: why shared). */
struct nq_dl_crnd dl_crnd[NQ_DL_DIRS];

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NQ_DL_DIRS);
	__type(key, __u32);
	__type(value, struct nq_dl_stats);
} dl_stats SEC(".maps");

struct dl_pkt {
	__u8 family;
	__u8 proto;
	__u8 has_ports;
	__u8 pad;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * bpf_skb_load_bytes() rather than direct packet access: it copes with
 * non-linear skbs (GSO super-packets from TCP) and variable offsets.
 * Returns 0 for an IP packet.
 */
static __always_inline int parse(struct __sk_buff *skb, struct dl_pkt *p)
{
	__u32 off = l2_hdr_len;
	__u8 nexthdr;
	int fragment = 0;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) || ip.ihl < 5)
			return -1;
		p->family = AF_INET;
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		nexthdr = ip.protocol;
		fragment = (ip.frag_off & bpf_htons(IP_OFFSET)) != 0;
		off += ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return -1;
		p->family = AF_INET6;
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		nexthdr = ip6.nexthdr;
		off += sizeof(ip6);
		for (int i = 0; i < DL_IPV6_EXT_MAX; i++) {
			__u8 h[4];

			if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
			    nexthdr == IPPROTO_DSTOPTS) {
				if (bpf_skb_load_bytes(skb, off, h, 2))
					return -1;
				nexthdr = h[0];
				off += ((__u32)h[1] + 1) * 8;
			} else if (nexthdr == IPPROTO_FRAGMENT) {
				if (bpf_skb_load_bytes(skb, off, h, 4))
					return -1;
				nexthdr = h[0];
				fragment = (((__u16)h[2] << 8 | h[3]) & 0xfff8) != 0;
				off += 8;
				break;
			} else {
				break;
			}
		}
	} else {
		return -1;
	}
	p->proto = nexthdr;
	if (!fragment && (nexthdr == IPPROTO_TCP || nexthdr == IPPROTO_UDP)) {
		__u8 ports[4];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
			return -1;
		p->sport = ((__u16)ports[0] << 8) | ports[1];
		p->dport = ((__u16)ports[2] << 8) | ports[3];
		p->has_ports = 1;
	}
	return 0;
}

/*
 * Verifier: global (non-inlined) so it is verified once, not once per slot
 * of the loop below; its pointer arguments may be NULL as far as the
 * verifier knows, hence the checks. lport/rport: the pod's and the peer's
 * port (source and destination on egress, the other way round on ingress).
 */
__noinline int dl_rule_matches(const struct nq_rule *r, const struct dl_pkt *p, __u16 lport,
			       __u16 rport)
{
	if (!r || !p)
		return 0;
	if (r->proto == NQ_PROTO_ICMP) {
		if (p->proto != (p->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6))
			return 0;
	} else if (r->proto != NQ_PROTO_ANY && r->proto != p->proto) {
		return 0;
	}
	if (!r->n_remote_ports && !r->n_local_ports)
		return 1;
	if (!p->has_ports)
		return 0;
	return port_in(r->remote_ports, r->n_remote_ports, rport) &&
	       port_in(r->local_ports, r->n_local_ports, lport);
}

static __always_inline int in_scope(struct __sk_buff *skb, __u32 d)
{
	struct dl_pkt p = {};
	struct nq_config *cfg;
	__u32 zero = 0, cand;
	const __u8 *raddr, *laddr;
	__u16 lport, rport;

	cfg = bpf_map_lookup_elem(&nq_config, &zero);
	if (!cfg)
		return 0;
	cand = cfg->active & cfg->candidates[d];
	if (!cand || parse(skb, &p))
		return 0;
	if (d == NQ_IDX_EGRESS) {
		raddr = p.daddr;
		laddr = p.saddr;
		rport = p.dport;
		lport = p.sport;
	} else {
		raddr = p.saddr;
		laddr = p.daddr;
		rport = p.sport;
		lport = p.dport;
	}
	cand &= lpm_mask(&nq_remote4, &nq_remote6, p.family, raddr) | cfg->any_remote;
	cand &= lpm_mask(&nq_local4, &nq_local6, p.family, laddr) | cfg->any_local;
	for (__u32 slot = 0; slot < NQ_MAX_RULES; slot++) {
		const struct nq_rule *r;
		__u32 idx = slot; /* a copy: see netfault.bpf.c on 6.1's verifier */

		if (!(cand & (1U << slot)))
			continue;
		r = bpf_map_lookup_elem(&nq_rules, &idx);
		if (r && dl_rule_matches(r, &p, lport, rport))
			return 1;
	}
	return 0;
}

static __always_inline struct nq_dl_stats *stats(__u32 d)
{
	return bpf_map_lookup_elem(&dl_stats, &d);
}

/*
 * netem's get_crandom(): with rho = 0 a fresh uniform number, else the
 * fresh one blended with the previous answer,
 *   next = (value * (2^32 - rho') + last * rho') >> 32,  rho' = rho + 1.
 * No overflow: both products are below 2^32 * (2^32 - 1) together.
 */
static __always_inline __u32 crandom(__u32 rho, __u64 *last)
{
	__u64 value = bpf_get_prandom_u32(), r, answer;

	if (!rho)
		return value;
	r = (__u64)rho + 1;
	answer = (value * ((1ULL << 32) - r) + *last * r) >> 32;
	*last = answer;
	return answer;
}

/* netem's test: "p && p >= get_crandom()"; no draw at all when p is 0. */
static __always_inline int roll(__u32 p, __u32 rho, __u64 *last)
{
	return p && p >= crandom(rho, last);
}

/*
 * netem's corruption: one random bit of one random byte. netem picks the
 * byte within the linear head of each GSO segment and first computes a
 * CHECKSUM_PARTIAL packet's checksum in software (skb_checksum_help), so
 * the receiver sees a checksum error. No helper can finish a partial
 * checksum, so here the flip lands in data whose checksum is filled in
 * later, over the flipped bit: such a packet arrives corrupted and
 * accepted (docs/delay-line.md). With CHECKSUM_COMPLETE (ingress from a
 * NIC) skb->csum is kept right (BPF_F_RECOMPUTE_CSUM), so the stack does
 * not report a hardware checksum fault but sees the L4 checksum fail; the
 * link-layer header is outside skb->csum on ingress, hence no recompute
 * there. bpf_skb_store_bytes() unclones (a duplicate keeps its bytes) and
 * pulls a paged offset into the head.
 */
static __always_inline int corrupt_bit(struct __sk_buff *skb)
{
	__u32 len = skb->len, off;
	__u8 b;

	if (!len)
		return 0;
	off = bpf_get_prandom_u32() % len;
	if (bpf_skb_load_bytes(skb, off, &b, 1))
		return 0;
	b ^= 1 << (bpf_get_prandom_u32() & 7);
	return bpf_skb_store_bytes(skb, off, &b, 1,
				   off >= l2_hdr_len ? BPF_F_RECOMPUTE_CSUM : 0) == 0;
}

/*
 * A packet in the direction d's hook: scope, heartbeat, then netem's
 * enqueue order: duplicate roll, loss roll (a lost packet that was to be
 * duplicated still goes out once), the duplicate, corruption of the
 * original, the delay. The duplicate is cloned back into this same hook,
 * marked, so like netem's (re-enqueued at the root with duplication off) it
 * gets its own loss and corruption rolls and its own delay, and is never
 * duplicated again.
 */
static __always_inline int handle(struct __sk_buff *skb, const __u32 d, int is_dup)
{
	struct nq_dl_dir *dir = &dl_state.dir[d];
	struct nq_dl_crnd *crnd = &dl_crnd[d];
	struct nq_dl_stats *st;
	int copies = 1;
	__u64 now;

	if (!in_scope(skb, d))
		return TC_ACT_UNSPEC;
	st = stats(d);
	if (st)
		st->matched++;
	now = bpf_ktime_get_ns();
	/* Signed: a beat stored just after we read the clock is "now". */
	if ((__s64)(now - dir->heartbeat_ns) > (__s64)stale_ns) {
		if (st)
			st->bypassed++;
		return TC_ACT_UNSPEC;
	}
	if (!is_dup && roll(dir->duplicate, dir->duplicate_corr, &crnd->duplicate))
		copies++;
	if (roll(dir->loss, dir->loss_corr, &crnd->loss)) {
		if (st)
			st->lost++;
		if (--copies == 0)
			return TC_ACT_SHOT;
	}
	if (copies > 1) {
		int rc;

		if (d == NQ_IDX_EGRESS) {
			__u32 saved = skb->tc_index;

			skb->tc_index = NQ_DL_DUP_TC_INDEX;
			rc = bpf_clone_redirect(skb, dl_state.veth_ifindex, 0);
			skb->tc_index = saved;
		} else {
			__u32 saved = skb->mark;

			skb->mark = NQ_DL_DUP_MARK;
			rc = bpf_clone_redirect(skb, dl_state.veth_ifindex, BPF_F_INGRESS);
			skb->mark = saved;
		}
		if (!rc && st)
			st->duplicated++;
	}
	if (roll(dir->corrupt, dir->corrupt_corr, &crnd->corrupt) && corrupt_bit(skb) && st)
		st->corrupted++;
	if (!dir->redirect)
		return TC_ACT_UNSPEC;
	if (st)
		st->redirected++;
	return bpf_redirect(dir->tap_ifindex, 0);
}

/* Unclaimed packets return TC_ACT_UNSPEC (TCX_NEXT): later programs still run. */
SEC("tc")
int dl_egress(struct __sk_buff *skb)
{
	__u32 tap = dl_state.dir[NQ_IDX_EGRESS].tap_ifindex;
	int is_dup;

	if (!tap)
		return TC_ACT_UNSPEC;
	if (skb->ingress_ifindex == tap) {
		/* Back from the engine: out it goes. */
		struct nq_dl_stats *st = stats(NQ_IDX_EGRESS);

		if (st)
			st->returned++;
		return TC_ACT_UNSPEC;
	}
	is_dup = skb->tc_index == NQ_DL_DUP_TC_INDEX;
	if (is_dup)
		skb->tc_index = 0;
	return handle(skb, NQ_IDX_EGRESS, is_dup);
}

SEC("tc")
int dl_ingress(struct __sk_buff *skb)
{
	int is_dup;

	if (!dl_state.dir[NQ_IDX_INGRESS].tap_ifindex)
		return TC_ACT_UNSPEC;
	if (skb->mark == NQ_DL_RETURN_MARK) {
		/* Back from the engine: in it goes, with mark 0 as it came. */
		struct nq_dl_stats *st = stats(NQ_IDX_INGRESS);

		skb->mark = 0;
		if (st)
			st->returned++;
		return TC_ACT_UNSPEC;
	}
	is_dup = skb->mark == NQ_DL_DUP_MARK;
	if (is_dup)
		skb->mark = 0;
	return handle(skb, NQ_IDX_INGRESS, is_dup);
}

/*
 * Everything arriving on a TAP was written by its engine (the TAPs have no
 * address and IPv6 off, so the kernel sends nothing into them of its own).
 * Which TAP it arrived on says which way the frame was going: frames of
 * the ingress TAP enter the pod interface as if received from the peer.
 */
SEC("tc")
int dl_tap_ingress(struct __sk_buff *skb)
{
	__u32 veth = dl_state.veth_ifindex;
	__u32 in_tap = dl_state.dir[NQ_IDX_INGRESS].tap_ifindex;

	if (!veth)
		return TC_ACT_SHOT;
	if (in_tap && skb->ifindex == in_tap) {
		skb->mark = NQ_DL_RETURN_MARK;
		return bpf_redirect(veth, BPF_F_INGRESS);
	}
	return bpf_redirect(veth, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
