// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * delayline: latency without sch_netem. Two programs around one TAP device
 * that the agent's delay engine reads and writes (agent/delay/):
 *
 *   pod stack -> eth0 egress [dl_egress] --bpf_redirect--> TAP --read()-->
 *   engine holds the frame until its due time --write()--> TAP ingress
 *   [dl_tap_ingress] --bpf_redirect--> eth0 egress [dl_egress: passes] -> peer
 *
 * dl_egress is attached to the pod interface's egress, dl_tap_ingress to the
 * TAP's ingress, both through TCX links the agent process holds: a killed
 * agent takes the redirect (and its TAP) with it, and traffic flows again.
 *
 * Scope: the netfault rule maps, same layout and same compiler
 * (agent/net/rules.h), SHAPE rules on egress; a packet in scope of any
 * active slot is delayed. Only the egress direction for now.
 *
 * Loop detection: a frame the engine wrote back reaches eth0's egress again,
 * this time with skb->ingress_ifindex = the TAP (it was received there);
 * those pass. (skb->mark would be the pod's own to use, and is not cleared
 * on the way through the TAP's fd either.)
 *
 * Fail-safety beyond the links: the engine stores a CLOCK_MONOTONIC
 * heartbeat in dl_state every few ms. When it is older than stale_ns (the
 * engine hangs, is stopped, or its process is frozen while holding the
 * links), dl_egress passes packets undelayed and does not drop either.
 *
 * Loss is rolled here, before the redirect, so lost packets never cost the
 * engine a read.
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
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
 * verifier knows, hence the checks.
 */
__noinline int dl_rule_matches(const struct nq_rule *r, const struct dl_pkt *p)
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
	/* Egress: the remote port is the destination. */
	return port_in(r->remote_ports, r->n_remote_ports, p->dport) &&
	       port_in(r->local_ports, r->n_local_ports, p->sport);
}

static __always_inline int in_scope(struct __sk_buff *skb)
{
	struct dl_pkt p = {};
	struct nq_config *cfg;
	__u32 zero = 0, cand;

	cfg = bpf_map_lookup_elem(&nq_config, &zero);
	if (!cfg)
		return 0;
	cand = cfg->active & cfg->candidates[NQ_IDX_EGRESS];
	if (!cand || parse(skb, &p))
		return 0;
	cand &= lpm_mask(&nq_remote4, &nq_remote6, p.family, p.daddr) | cfg->any_remote;
	cand &= lpm_mask(&nq_local4, &nq_local6, p.family, p.saddr) | cfg->any_local;
	for (__u32 slot = 0; slot < NQ_MAX_RULES; slot++) {
		const struct nq_rule *r;
		__u32 idx = slot; /* a copy: see netfault.bpf.c on 6.1's verifier */

		if (!(cand & (1U << slot)))
			continue;
		r = bpf_map_lookup_elem(&nq_rules, &idx);
		if (r && dl_rule_matches(r, &p))
			return 1;
	}
	return 0;
}

static __always_inline struct nq_dl_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&dl_stats, &zero);
}

/* Unclaimed packets return TC_ACT_UNSPEC (TCX_NEXT): later programs still run. */
SEC("tc")
int dl_egress(struct __sk_buff *skb)
{
	__u32 tap = dl_state.tap_ifindex;
	struct nq_dl_stats *st;
	__u64 now;

	if (!tap)
		return TC_ACT_UNSPEC;
	st = stats();
	if (skb->ingress_ifindex == tap) {
		/* Back from the engine: out it goes. */
		if (st)
			st->returned++;
		return TC_ACT_UNSPEC;
	}
	if (!in_scope(skb))
		return TC_ACT_UNSPEC;
	if (st)
		st->matched++;
	now = bpf_ktime_get_ns();
	/* Signed: a beat stored just after we read the clock is "now". */
	if ((__s64)(now - dl_state.heartbeat_ns) > (__s64)stale_ns) {
		if (st)
			st->bypassed++;
		return TC_ACT_UNSPEC;
	}
	if (dl_state.loss && bpf_get_prandom_u32() < dl_state.loss) {
		if (st)
			st->lost++;
		return TC_ACT_SHOT;
	}
	if (!dl_state.redirect)
		return TC_ACT_UNSPEC;
	if (st)
		st->redirected++;
	return bpf_redirect(tap, 0);
}

/*
 * Everything arriving on the TAP was written by the engine (the TAP has no
 * address and IPv6 off, so the kernel sends nothing into it of its own).
 */
SEC("tc")
int dl_tap_ingress(struct __sk_buff *skb)
{
	__u32 veth = dl_state.veth_ifindex;

	if (!veth)
		return TC_ACT_SHOT;
	return bpf_redirect(veth, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
