/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * netfault ABI: the map keys and values shared by netfault.bpf.c and the
 * agent (agent/net/rules.cpp, agent/net/netfault_bpf.cpp). This is the only
 * definition of these structs; userspace static_asserts their layout.
 *
 * Only fixed-width UAPI types, explicit padding and no bitfields, so clang
 * -target bpf and the host C++ compiler agree on every offset.
 */
#ifndef NODEQUAKE_EBPF_NETFAULT_H
#define NODEQUAKE_EBPF_NETFAULT_H

#include <linux/types.h>

/* Rule slots per interface: the slot masks are __u32. */
#define NQ_MAX_RULES 32
/* Port ranges per side of a rule (agent/net/path.h: kMaxPortRanges). */
#define NQ_MAX_PORT_RANGES 8
/*
 * Entries per LPM trie: every rule may list up to 64 CIDRs per side
 * (kMaxCidrsPerScope), and identical prefixes share one entry.
 */
#define NQ_LPM_MAX_ENTRIES (NQ_MAX_RULES * 64)
/* Connections let through a one-way partition (LRU: old ones are evicted). */
#define NQ_MAX_FLOWS 16384
/* Hard cap of IPv6 extension headers walked; the rodata tunable is clamped to it. */
#define NQ_IPV6_EXT_HDR_CAP 8

/* Directions, seen from the pod (agent/net/path.h: Dir). */
#define NQ_DIR_EGRESS 1
#define NQ_DIR_INGRESS 2
#define NQ_DIR_BOTH (NQ_DIR_EGRESS | NQ_DIR_INGRESS)
/* Index of a direction in nq_config.candidates. */
#define NQ_IDX_EGRESS 0
#define NQ_IDX_INGRESS 1

/* nq_rule.kind */
#define NQ_RULE_PARTITION 1
#define NQ_RULE_SHAPE 2

/*
 * nq_rule.proto. NQ_PROTO_ICMP matches ICMP on IPv4 and ICMPv6 on IPv6;
 * NQ_PROTO_ANY matches every protocol.
 */
#define NQ_PROTO_ANY 0
#define NQ_PROTO_ICMP 1
#define NQ_PROTO_TCP 6
#define NQ_PROTO_UDP 17

/* LPM trie keys: prefixlen first, address in network byte order. */
struct nq_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct nq_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Inclusive, host byte order. */
struct nq_port_range {
	__u16 first;
	__u16 last;
};

/* One rule slot (array map nq_rules, index = slot). */
struct nq_rule {
	__u8 kind;             /* NQ_RULE_* */
	__u8 dirs;             /* NQ_DIR_* bitmask */
	__u8 proto;            /* NQ_PROTO_* */
	__u8 n_remote_ports;   /* 0 = any remote port */
	__u8 n_local_ports;    /* 0 = any local port */
	__u8 pad[3];
	__u32 egress_classid;  /* SHAPE: skb->priority on egress */
	__u32 ingress_classid; /* SHAPE: skb->priority before the ifb redirect */
	struct nq_port_range remote_ports[NQ_MAX_PORT_RANGES];
	struct nq_port_range local_ports[NQ_MAX_PORT_RANGES];
};

/*
 * Everything that decides which slots are live, in the single entry of the
 * array map nq_config, so one map update switches rules on or off.
 */
struct nq_config {
	__u32 active;     /* slots in effect */
	__u32 any_remote; /* slots without remote CIDRs (any remote address) */
	__u32 any_local;  /* slots without local CIDRs */
	__u32 partitions; /* slots of kind NQ_RULE_PARTITION (the rest are SHAPE) */
	/*
	 * Slots to consider per direction (NQ_IDX_*): SHAPE rules in their
	 * directions, PARTITION rules in both (the open side records flows).
	 */
	__u32 candidates[2];
	__u32 ifb_ifindex; /* ingress shaping target; 0 = no ifb yet */
};

/*
 * A connection admitted through a one-way partition, from the pod's point
 * of view (local = the pod). Addresses in network byte order (IPv4 in the
 * first 4 bytes, the rest zero), ports in host byte order.
 */
struct nq_flow_key {
	__u8 family; /* AF_INET / AF_INET6 */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 slot;   /* the partition rule that admitted it */
	__u8 pad;
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
};

/* Per-slot counters (per-CPU array nq_stats, index = slot). */
struct nq_stats {
	__u64 matched;  /* packets matching the rule's scope */
	__u64 dropped;  /* packets the rule dropped */
	__u64 recorded; /* flow records written on the open side of a partition */
	__u64 shaped;   /* packets classified (and on ingress redirected) */
};

#endif /* NODEQUAKE_EBPF_NETFAULT_H */
