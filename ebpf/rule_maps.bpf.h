/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The rule maps and the lookups both tc programs match packets with
 * (netfault.bpf.c, delayline.bpf.c): what the agent's rule compiler
 * (agent/net/rules.h) fills, under the same names in both skeletons.
 * Included by exactly one .bpf.c per object, after netfault.h.
 */
#ifndef NQ_RULE_MAPS_BPF_H
#define NQ_RULE_MAPS_BPF_H

#ifndef AF_INET
#define AF_INET 2
#endif

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NQ_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__type(key, struct nq_lpm4_key);
	__type(value, __u32);
} nq_remote4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NQ_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nq_lpm6_key);
	__type(value, __u32);
} nq_remote6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NQ_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nq_lpm4_key);
	__type(value, __u32);
} nq_local4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NQ_LPM_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nq_lpm6_key);
	__type(value, __u32);
} nq_local6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NQ_MAX_RULES);
	__type(key, __u32);
	__type(value, struct nq_rule);
} nq_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nq_config);
} nq_config SEC(".maps");

/* The rule slots whose CIDR list holds `addr` (host prefix lookup). */
static __always_inline __u32 lpm_mask(void *trie4, void *trie6, __u8 family, const __u8 *addr)
{
	__u32 *mask;

	if (family == AF_INET) {
		struct nq_lpm4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, addr, 4);
		mask = bpf_map_lookup_elem(trie4, &k);
	} else {
		struct nq_lpm6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, addr, 16);
		mask = bpf_map_lookup_elem(trie6, &k);
	}
	return mask ? *mask : 0;
}

static __always_inline int port_in(const struct nq_port_range *r, __u8 n, __u16 port)
{
	if (n == 0)
		return 1;
	for (int i = 0; i < NQ_MAX_PORT_RANGES; i++) {
		if (i >= n)
			break;
		/*
		 * One unsigned compare instead of two: port's own bounds are
		 * not refined per range, so the verifier's states stay equal
		 * and prune.
		 */
		if ((__u16)(port - r[i].first) <= (__u16)(r[i].last - r[i].first))
			return 1;
	}
	return 0;
}

#endif /* NQ_RULE_MAPS_BPF_H */
