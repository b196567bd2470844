// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ioerrno: make open(), read() and write() of files under a path prefix
 * fail with a chosen errno, for the processes of chosen cgroups, as a BPF
 * LSM. The agent (agent/io/ioerrno_bpf.cpp) keeps one nq_io_config per
 * target container in nq_io_configs, keyed by its v2 cgroup id, and holds
 * the three programs' links: when the agent dies, so does the fault.
 *
 * Scope. bpf_get_current_cgroup_id() is the calling task's cgroup in the
 * v2 hierarchy; only tasks of a configured cgroup are looked at, so every
 * other task pays one hash lookup per open/read/write.
 *
 * Path. bpf_d_path() gives the path as the calling task sees it (relative
 * to its root: the container's view). The verifier allows it in LSM
 * programs only on "sleepable" hooks (bpf_lsm_is_sleepable_hook), which
 * file_open is and file_permission is not. So the path is matched once, at
 * open: nq_io_open fails the open itself (op OPEN) and, when READ or WRITE
 * are configured, marks the struct file in nq_io_files; nq_io_perm
 * (read/write, via rw_verify_area) fails calls on marked files only, and
 * nq_io_free drops the mark when the file is freed. Consequence: a file
 * opened before the injection began is not faulted for read/write.
 *
 * Percent: a matching call fails when bpf_get_prandom_u32() < threshold.
 *
 * Kernels: loads on 6.1 (Debian 12's stock kernel) and later; the comments
 * marked "Verifier" say what the older verifier needs.
 */
#include <linux/bpf.h>
#include <linux/types.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "ioerrno.h"

/* include/linux/fs.h (not UAPI): file_permission's mask bits. */
#define MAY_WRITE 0x2
#define MAY_READ 0x4

/*
 * The two kernel types this program reads, CO-RE style: libbpf relocates
 * f_path's offset against the running kernel's BTF, so no vmlinux.h of the
 * build host is baked in.
 */
struct path {
	void *mnt;
	void *dentry;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NQ_IO_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct nq_io_config);
} nq_io_configs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NQ_IO_MAX_FILES);
	__type(key, __u64);
	__type(value, struct nq_io_file);
} nq_io_files SEC(".maps");

/*
 * Verifier: a 4 KiB path buffer does not fit the 512-byte stack; a per-CPU
 * slot is safe because LSM programs run with migration disabled.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[NQ_IO_PATH_MAX]);
} nq_io_path SEC(".maps");

/* Counts the call as matched and decides whether it fails. */
static __always_inline int roll(struct nq_io_config *cfg)
{
	__sync_fetch_and_add(&cfg->matched, 1);
	if (cfg->threshold < NQ_IO_THRESHOLD_ALWAYS &&
	    (__u64)bpf_get_prandom_u32() >= cfg->threshold)
		return 0;
	__sync_fetch_and_add(&cfg->failed, 1);
	return -(int)cfg->error;
}

SEC("lsm/file_open")
int BPF_PROG(nq_io_open, struct file *file, int ret)
{
	struct nq_io_config *cfg;
	struct nq_io_file mark = {};
	__u64 cgroup_id, key;
	__u32 zero = 0;
	char *path;
	long len;

	if (ret != 0)
		return ret; /* an earlier LSM already refused */
	cgroup_id = bpf_get_current_cgroup_id();
	cfg = bpf_map_lookup_elem(&nq_io_configs, &cgroup_id);
	if (!cfg)
		return 0;
	path = bpf_map_lookup_elem(&nq_io_path, &zero);
	if (!path)
		return 0;
	len = bpf_d_path(&file->f_path, path, NQ_IO_PATH_MAX);
	if (len <= 0)
		return 0; /* unreachable or too long a path: not ours to fail */
	if (!nq_io_prefix_match(path, NQ_IO_PATH_MAX, cfg->prefix, cfg->prefix_len))
		return 0;
	if (cfg->ops & NQ_IO_OP_OPEN) {
		int err = roll(cfg);

		if (err)
			return err; /* the file is freed; nothing to mark */
	}
	if (!(cfg->ops & (NQ_IO_OP_READ | NQ_IO_OP_WRITE)))
		return 0;
	mark.cgroup_id = cgroup_id;
	mark.generation = cfg->generation;
	key = (__u64)file;
	/* A full map leaves the file unmarked: the fault is best effort there. */
	bpf_map_update_elem(&nq_io_files, &key, &mark, BPF_ANY);
	return 0;
}

SEC("lsm/file_permission")
int BPF_PROG(nq_io_perm, struct file *file, int mask, int ret)
{
	struct nq_io_config *cfg;
	struct nq_io_file *mark;
	__u64 cgroup_id, key;
	__u32 op;

	if (ret != 0)
		return ret;
	cgroup_id = bpf_get_current_cgroup_id();
	cfg = bpf_map_lookup_elem(&nq_io_configs, &cgroup_id);
	if (!cfg)
		return 0;
	op = (mask & MAY_WRITE) ? NQ_IO_OP_WRITE : (mask & MAY_READ) ? NQ_IO_OP_READ : 0;
	if (!(cfg->ops & op))
		return 0;
	key = (__u64)file;
	mark = bpf_map_lookup_elem(&nq_io_files, &key);
	/*
	 * The mark must come from this cgroup's current config: a file marked
	 * by an earlier injection, or passed from another cgroup, is left alone.
	 */
	if (!mark || mark->cgroup_id != cgroup_id || mark->generation != cfg->generation)
		return 0;
	return roll(cfg);
}

SEC("lsm/file_free_security")
int BPF_PROG(nq_io_free, struct file *file)
{
	__u64 key = (__u64)file;

	/*
	 * Every freed file, whoever frees it: a mark must not outlive its file,
	 * or a new file at the same address would inherit it.
	 */
	bpf_map_delete_elem(&nq_io_files, &key);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
