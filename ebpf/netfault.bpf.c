// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * netfault: network partitions and shaping classification for one pod
 * interface. One instance of this object per interface holds all of that
 * interface's rules; nq_egress and nq_ingress are attached to its two tc
 * hooks (TCX links, or clsact filters on kernels without TCX).
 *
 * Matching. A packet's remote address (destination on egress, source on
 * ingress) and local address (the other one) are looked up in per-family LPM
 * tries whose values are bitmasks of rule slots. The agent ORs into every
 * prefix the slots of all shorter prefixes containing it, so the single
 * longest-prefix answer is complete. Slots with no CIDRs on a side are in
 * nq_config.any_remote / any_local. Candidates are
 *   (remote | any_remote) & (local | any_local) & active & candidates[dir]
 * and are checked in slot order against protocol and port ranges.
 *
 * PARTITION, direction BOTH: every matching packet is dropped, both ways.
 * PARTITION, direction TO (egress blocked): the pod cannot reach the peers,
 * but peers can still open connections to the pod. On ingress (the open
 * side) a matching TCP SYN without ACK, or any UDP datagram, records the
 * flow in nq_flows (keyed from the pod's point of view, per rule slot) and
 * passes; on egress, matching TCP/UDP packets are dropped unless their flow
 * is recorded. FROM is the mirror image: egress SYNs / UDP record, ingress
 * drops what is not recorded. Other protocols (ICMP, ...) are dropped
 * statelessly in the blocked direction. Connections established before the
 * partition are cut: nobody recorded them. Records are never removed by
 * FIN/RST (the LRU evicts them, the agent purges a slot's records when the
 * rule goes), so a peer reusing a recorded 4-tuple is let through.
 * ICMPv6 neighbour discovery is never partitioned: like ARP, which this
 * program does not see at all, it is link plumbing, and dropping it would
 * also break the open direction (the peer could not resolve the pod).
 * Non-first fragments carry no ports: they match only rules without port
 * ranges, and in the blocked direction of a one-way partition TCP/UDP
 * fragments pass, because the first fragment carried the verdict and a
 * datagram without it is never reassembled.
 *
 * SHAPE: on egress skb->priority = egress_classid and TC_ACT_OK; the HTB root
 * the agent put on the interface (default class 0) classifies by
 * skb->priority when it names one of its classes. On ingress skb->priority =
 * ingress_classid and the packet is redirected to the egress of the ifb
 * device nq_config.ifb_ifindex, which has its own HTB tree; the ifb hands it
 * back to this interface's ingress with tc_skip_classify set, so this program
 * does not see it twice. Partition drops win over shaping; among SHAPE rules
 * the lowest slot wins.
 *
 * The ifb hop: an ifb drops every packet whose skb->redirected is not set.
 * bpf_redirect() sets it on recent kernels (6.18 here), and attached by TCX
 * links (6.6+) nq_ingress redirects so. On 6.1 it does not, and the packets
 * were lost: attached as clsact filters (ifb_by_filter set), nq_ingress
 * marks the packet in skb->cb and returns TC_ACT_UNSPEC instead, and the
 * next filter, nq_ingress_ifb with a mirred action, which does set
 * skb->redirected, takes it to the ifb (the agent keeps the action's target
 * equal to nq_config.ifb_ifindex; see agent/net/netfault_bpf.cpp).
 *
 * Packets no rule claims return TC_ACT_UNSPEC (TCX_NEXT), not TC_ACT_OK:
 * programs attached after this one (a CNI's, say) still get to see them.
 *
 * Kernels: one object for 6.1 (Debian 12's stock kernel, clsact only) up to
 * 6.18; the comments marked "Verifier" say what the older one needs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "netfault.h"
#include "rule_maps.bpf.h"

#define AF_INET 2
#define AF_INET6 10

/* Fragment offset bits of iphdr.frag_off (include/net/ip.h, not UAPI). */
#define IP_OFFSET 0x1fff
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
/* ICMPv6 router solicitation .. redirect: neighbour discovery (RFC 4861). */
#define ICMPV6_NDP_FIRST 133
#define ICMPV6_NDP_LAST 137

/*
 * Load-time tunables (rodata, set by the agent before load).
 * l2_hdr_len: bytes before the IP header; pod interfaces are veths, so
 * Ethernet. ipv6_ext_hdr_max: IPv6 extension headers walked before giving
 * up on finding the transport header (clamped to NQ_IPV6_EXT_HDR_CAP, which
 * bounds the loop for the verifier).
 */
const volatile __u32 l2_hdr_len = ETH_HLEN;
const volatile __u32 ipv6_ext_hdr_max = 4;

/*
 * Set by the agent while the programs are attached as clsact filters (not
 * rodata: the attach mode is chosen after load): ingress packets bound for
 * the ifb go through the filter after this one. See "The ifb hop" above.
 */
__u32 ifb_by_filter;

/* skb->cb word that tells nq_ingress_ifb to take the packet to the ifb. */
#define CB_IFB 0
#define CB_TO_IFB 0x4e51f1b0

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NQ_MAX_FLOWS);
	__type(key, struct nq_flow_key);
	__type(value, __u64); /* bpf_ktime_get_ns() of the last recording */
} nq_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NQ_MAX_RULES);
	__type(key, __u32);
	__type(value, struct nq_stats);
} nq_stats SEC(".maps");

/* What the rules look at, parsed once per packet. */
struct nq_pkt {
	__u8 family;
	__u8 proto;     /* transport protocol after IPv6 extension headers */
	__u8 has_ports; /* TCP/UDP header read (a first fragment) */
	__u8 fragment;  /* a non-first fragment: no transport header */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3, low bits are flags */
	__be32 id;
};

/*
 * Headers are copied with bpf_skb_load_bytes() rather than read through
 * direct packet pointers: it works on non-linear skbs (GRO, paged headers)
 * and keeps variable offsets (IHL, extension headers) verifier-friendly.
 * Returns 0 when p describes an IP packet, -1 otherwise.
 */
static __always_inline int parse(struct __sk_buff *skb, struct nq_pkt *p)
{
	__u32 off = l2_hdr_len;
	__u8 nexthdr;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) || ip.ihl < 5)
			return -1;
		p->family = AF_INET;
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		nexthdr = ip.protocol;
		p->fragment = (ip.frag_off & bpf_htons(IP_OFFSET)) != 0;
		off += ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u32 ext_max = ipv6_ext_hdr_max;

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)))
			return -1;
		p->family = AF_INET6;
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		nexthdr = ip6.nexthdr;
		off += sizeof(ip6);
		/* Constant bound for the verifier, rodata limit below it. */
		for (int i = 0; i < NQ_IPV6_EXT_HDR_CAP; i++) {
			__u8 h[2];

			if (i >= ext_max || p->fragment)
				break;
			if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
			    nexthdr == IPPROTO_DSTOPTS) {
				if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
					return -1;
				nexthdr = h[0];
				off += ((__u32)h[1] + 1) * 8;
			} else if (nexthdr == IPPROTO_AH) {
				if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
					return -1;
				nexthdr = h[0];
				off += ((__u32)h[1] + 2) * 4;
			} else if (nexthdr == IPPROTO_FRAGMENT) {
				struct ipv6_frag f;

				if (bpf_skb_load_bytes(skb, off, &f, sizeof(f)))
					return -1;
				nexthdr = f.nexthdr;
				p->fragment = (f.frag_off & bpf_htons(0xfff8)) != 0;
				off += sizeof(f);
			} else {
				break;
			}
		}
	} else {
		return -1;
	}

	p->proto = nexthdr;
	if (p->fragment)
		return 0;
	if (nexthdr == IPPROTO_TCP) {
		/* Ports, sequence and ack numbers, data offset, then the flags. */
		__u8 tcp[14];

		if (bpf_skb_load_bytes(skb, off, tcp, sizeof(tcp)))
			return -1;
		p->sport = ((__u16)tcp[0] << 8) | tcp[1];
		p->dport = ((__u16)tcp[2] << 8) | tcp[3];
		p->tcp_flags = tcp[13];
		p->has_ports = 1;
	} else if (nexthdr == IPPROTO_UDP) {
		__u8 udp[4];

		if (bpf_skb_load_bytes(skb, off, udp, sizeof(udp)))
			return -1;
		p->sport = ((__u16)udp[0] << 8) | udp[1];
		p->dport = ((__u16)udp[2] << 8) | udp[3];
		p->has_ports = 1;
	} else if (nexthdr == IPPROTO_ICMP || nexthdr == IPPROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, off, &p->icmp_type, 1))
			return -1;
	}
	return 0;
}

/* Slot mask of the longest prefix containing addr, 0 when none does. */


static __always_inline int is_icmp(const struct nq_pkt *p)
{
	return p->proto == (p->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
}

/*
 * Verifier: rule_matches() and partition_drops() are global (non-static,
 * __noinline) functions, so each is verified once on its own with generic
 * arguments instead of once per slot and per path of the two 32-slot loops:
 * with them inlined the verifier processes ~145k instructions per program
 * on 6.18 and ~108k on 6.1, instead of ~22k and ~19k. The price:
 *  - pointer arguments of global functions may be NULL as far as the
 *    verifier knows, hence the checks;
 *  - a global function sees its pointer arguments as plain memory
 *    (PTR_TO_MEM), which 6.1's helpers refuse as a map key ("R2 type=mem
 *    expected=fp, pkt, pkt_meta, map_key, map_value"; 6.18 takes it): there
 *    a key must point to the stack, the packet or a map value.
 *    partition_drops() therefore builds its flow key on its own stack from
 *    the parsed packet.
 */

/* Protocol and ports; the addresses were matched by the LPM lookups. */
__noinline int rule_matches(const struct nq_rule *r, const struct nq_pkt *p, __u16 lport,
			    __u16 rport)
{
	if (!r || !p)
		return 0;
	if (r->proto == NQ_PROTO_ICMP) {
		if (!is_icmp(p))
			return 0;
	} else if (r->proto != NQ_PROTO_ANY && r->proto != p->proto) {
		return 0;
	}
	if (!r->n_remote_ports && !r->n_local_ports)
		return 1;
	/* Port ranges need a transport header: not ICMP, not a later fragment. */
	if (!p->has_ports)
		return 0;
	return port_in(r->remote_ports, r->n_remote_ports, rport) &&
	       port_in(r->local_ports, r->n_local_ports, lport);
}

/* The map key is count()'s own copy of slot (see the loops in handle()). */
static __always_inline void count(__u32 slot, int field)
{
	struct nq_stats *st = bpf_map_lookup_elem(&nq_stats, &slot);

	if (!st)
		return;
	switch (field) {
	case 0:
		st->matched++;
		break;
	case 1:
		st->dropped++;
		break;
	case 2:
		st->recorded++;
		break;
	default:
		st->shaped++;
		break;
	}
}

#define CNT_MATCHED 0
#define CNT_DROPPED 1
#define CNT_RECORDED 2
#define CNT_SHAPED 3

/*
 * A PARTITION rule's verdict on a matching packet: 1 = drop. The flow key
 * is on this function's stack, not the caller's (see "Verifier" above).
 */
__noinline int partition_drops(const struct nq_rule *r, const struct nq_pkt *p, __u32 dir_bit,
			       __u32 slot)
{
	struct nq_flow_key key = {};
	int stateful;

	if (!r || !p)
		return 0;
	stateful = p->has_ports && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP);

	if (p->family == AF_INET6 && p->proto == IPPROTO_ICMPV6 &&
	    p->icmp_type >= ICMPV6_NDP_FIRST && p->icmp_type <= ICMPV6_NDP_LAST)
		return 0;

	if (stateful) {
		/* From the pod's point of view: local = the pod's side. */
		key.family = p->family;
		key.proto = p->proto;
		key.slot = slot;
		if (dir_bit == NQ_DIR_EGRESS) {
			key.local_port = p->sport;
			key.remote_port = p->dport;
			__builtin_memcpy(key.local_addr, p->saddr, 16);
			__builtin_memcpy(key.remote_addr, p->daddr, 16);
		} else {
			key.local_port = p->dport;
			key.remote_port = p->sport;
			__builtin_memcpy(key.local_addr, p->daddr, 16);
			__builtin_memcpy(key.remote_addr, p->saddr, 16);
		}
	}

	if (!(r->dirs & dir_bit)) {
		/* The open side: new connections across it are admitted. */
		if (stateful && (p->proto == IPPROTO_UDP ||
				 (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)) {
			__u64 now = bpf_ktime_get_ns();

			if (!bpf_map_update_elem(&nq_flows, &key, &now, BPF_ANY))
				count(slot, CNT_RECORDED);
		}
		return 0;
	}
	if (r->dirs == NQ_DIR_BOTH)
		return 1;
	if (stateful)
		return bpf_map_lookup_elem(&nq_flows, &key) == NULL;
	if (p->fragment && (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP))
		return 0;
	return 1;
}

static __always_inline int handle(struct __sk_buff *skb, __u32 dir_idx)
{
	const __u32 dir_bit = dir_idx == NQ_IDX_EGRESS ? NQ_DIR_EGRESS : NQ_DIR_INGRESS;
	struct nq_pkt p = {};
	struct nq_config *cfg;
	__u32 zero = 0, cand, remote, local;
	const __u8 *raddr, *laddr;
	__u16 lport, rport;

	/* skb->cb holds whatever an earlier layer left: clear our word. */
	if (dir_idx == NQ_IDX_INGRESS && ifb_by_filter)
		skb->cb[CB_IFB] = 0;
	cfg = bpf_map_lookup_elem(&nq_config, &zero);
	if (!cfg)
		return TC_ACT_UNSPEC;
	cand = cfg->active & cfg->candidates[dir_idx & 1];
	if (!cand || parse(skb, &p))
		return TC_ACT_UNSPEC;

	if (dir_bit == NQ_DIR_EGRESS) {
		laddr = p.saddr;
		raddr = p.daddr;
		lport = p.sport;
		rport = p.dport;
	} else {
		laddr = p.daddr;
		raddr = p.saddr;
		lport = p.dport;
		rport = p.sport;
	}
	remote = lpm_mask(&nq_remote4, &nq_remote6, p.family, raddr) | cfg->any_remote;
	local = lpm_mask(&nq_local4, &nq_local6, p.family, laddr) | cfg->any_local;
	cand &= remote & local;
	if (!cand)
		return TC_ACT_UNSPEC;

	/*
	 * Two passes, partitions first: they win over shaping whatever the
	 * slot order. Keeping them apart also keeps the verifier's state small
	 * (no "shaping slot found so far" carried through the iterations).
	 *
	 * Verifier: the map lookups take the address of idx, a copy, never of
	 * the loop counter. 6.1's verifier assumes a helper may write any stack
	 * memory passed to it, map keys included, and forgets what it held: a
	 * counter whose address went to bpf_map_lookup_elem() became an unknown
	 * scalar, so the loop looked unbounded ("infinite loop detected").
	 * Newer verifiers (6.18 here) keep read-only arguments as they were.
	 */
	for (__u32 slot = 0; slot < NQ_MAX_RULES; slot++) {
		const struct nq_rule *r;
		__u32 idx = slot;

		if (!(cand & cfg->partitions & (1U << slot)))
			continue;
		r = bpf_map_lookup_elem(&nq_rules, &idx);
		if (!r || !rule_matches(r, &p, lport, rport))
			continue;
		count(slot, CNT_MATCHED);
		if (partition_drops(r, &p, dir_bit, slot)) {
			count(slot, CNT_DROPPED);
			return TC_ACT_SHOT;
		}
	}
	for (__u32 slot = 0; slot < NQ_MAX_RULES; slot++) {
		const struct nq_rule *r;
		__u32 idx = slot;

		if (!(cand & ~cfg->partitions & (1U << slot)))
			continue;
		r = bpf_map_lookup_elem(&nq_rules, &idx);
		if (!r || !rule_matches(r, &p, lport, rport))
			continue;
		count(slot, CNT_MATCHED);
		count(slot, CNT_SHAPED);
		if (dir_bit == NQ_DIR_EGRESS) {
			skb->priority = r->egress_classid;
			return TC_ACT_OK;
		}
		skb->priority = r->ingress_classid;
		/* No ifb yet: nothing can shape ingress, let the packet in. */
		if (!cfg->ifb_ifindex)
			return TC_ACT_UNSPEC;
		if (ifb_by_filter) {
			skb->cb[CB_IFB] = CB_TO_IFB;
			return TC_ACT_UNSPEC;
		}
		return bpf_redirect(cfg->ifb_ifindex, 0);
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int nq_egress(struct __sk_buff *skb)
{
	return handle(skb, NQ_IDX_EGRESS);
}

SEC("tc")
int nq_ingress(struct __sk_buff *skb)
{
	return handle(skb, NQ_IDX_INGRESS);
}

/*
 * The clsact filter right after nq_ingress, in classifier mode (not direct
 * action) with a mirred action to the ifb: -1 = match, run the action;
 * 0 = no match, on to the next filter.
 */
SEC("tc")
int nq_ingress_ifb(struct __sk_buff *skb)
{
	return skb->cb[CB_IFB] == CB_TO_IFB ? -1 : 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
