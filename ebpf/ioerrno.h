/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ioerrno ABI: the map values shared by ioerrno.bpf.c and the agent
 * (agent/io/), and the path-prefix match both sides use. This is the only
 * definition of these structs; userspace static_asserts their layout.
 *
 * Only fixed-width UAPI types and explicit padding, so clang -target bpf and
 * the host C++ compiler agree on every offset.
 */
#ifndef NODEQUAKE_EBPF_IOERRNO_H
#define NODEQUAKE_EBPF_IOERRNO_H

#include <linux/types.h>

/*
 * Longest path prefix, in bytes without the NUL. The match loop runs this
 * many times at most per open; 256 keeps the 6.1 verifier's state count low
 * while covering any sane mount point or data directory.
 */
#define NQ_IO_PREFIX_MAX 256
/*
 * bpf_d_path() output buffer (PATH_MAX). A longer path fails d_path with
 * ENAMETOOLONG and is treated as not matching.
 */
#define NQ_IO_PATH_MAX 4096
/* Cgroups with an active config (one per target container). */
#define NQ_IO_MAX_CGROUPS 1024
/* Open files marked for read/write faults at any one time, system-wide. */
#define NQ_IO_MAX_FILES 65536

/* nq_io_config.ops: the operations that fail (agent/core/spec.h IoOperationBit). */
#define NQ_IO_OP_OPEN (1u << 0)
#define NQ_IO_OP_READ (1u << 1)
#define NQ_IO_OP_WRITE (1u << 2)

/*
 * Share of matching calls that fail: a call fails when
 * bpf_get_prandom_u32() < threshold. NQ_IO_THRESHOLD_ALWAYS (2^32) makes
 * every call fail, which no u32 threshold could.
 */
#define NQ_IO_THRESHOLD_ALWAYS (1ull << 32)

/*
 * Value of nq_io_configs, keyed by the v2 cgroup id (__u64) of a target
 * container. The agent writes the whole value once per injection; the
 * program only adds to the counters (atomically).
 */
struct nq_io_config {
	__u64 threshold;  /* see NQ_IO_THRESHOLD_ALWAYS */
	__u32 error;      /* positive errno; the hook returns -error */
	__u32 ops;        /* NQ_IO_OP_* */
	/*
	 * Distinguishes this config from an earlier one on the same cgroup:
	 * files marked under another generation are not faulted.
	 */
	__u32 generation;
	__u32 prefix_len; /* bytes of prefix used; 0 = every path ("/") */
	__u64 matched;    /* calls that matched (path, op); counter */
	__u64 failed;     /* of those, calls failed; counter */
	char prefix[NQ_IO_PREFIX_MAX]; /* no trailing '/', not NUL-terminated */
};

/* Value of nq_io_files, keyed by the struct file pointer (__u64). */
struct nq_io_file {
	__u64 cgroup_id;  /* cgroup whose config marked the file at open */
	__u32 generation; /* that config's generation */
	__u32 pad;
};

#ifdef __bpf__
#define NQ_IO_INLINE static __always_inline
#else
#define NQ_IO_INLINE static inline
#endif

/*
 * Whether `path` (as d_path gives it: absolute, NUL-terminated within
 * path_size bytes) lies at or below `prefix` (prefix_len bytes, no trailing
 * '/'), component-wise: "/data" matches "/data" and "/data/x", not
 * "/database". An empty prefix matches every absolute path.
 *
 * Verifier: both loops have constant bounds; indexes are checked against
 * path_size before each access, so the caller passes its buffer's size.
 */
NQ_IO_INLINE int nq_io_prefix_match(const char *path, __u32 path_size, const char *prefix,
				    __u32 prefix_len)
{
	__u32 i;

	if (prefix_len >= NQ_IO_PREFIX_MAX || prefix_len >= path_size)
		return 0;
	for (i = 0; i < NQ_IO_PREFIX_MAX; i++) {
		if (i >= prefix_len)
			break;
		if (path[i] != prefix[i])
			return 0;
	}
	return path[prefix_len] == '/' || path[prefix_len] == '\0';
}

#endif /* NODEQUAKE_EBPF_IOERRNO_H */
