// Exact snapshot and restore of an interface's root qdisc tree, so that
// replacing the root with ours never clobbers what a CNI (or an operator)
// installed. The snapshot is what the journal stores: raw rtnetlink messages
// (statistics stripped) in an order that can be replayed, parents first.
// Ingress and clsact qdiscs are not part of the root tree and never touched.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/net/netlink.h"
#include "agent/net/tc_dump.h"
#include "common/result.h"
#include "nodequake/v1/journal.pb.h"

namespace nq::net {

using QdiscTreeSnapshot = nodequake::v1::journal::QdiscTreeSnapshot;

// ------------------------------------------------------------ plans (pure)

// Picks the root tree out of everything on one device (dump_device()) and
// orders it: root, then per qdisc its classes (parents first) and the
// qdiscs grafted onto them, filters last. A kernel-default root (handle 0:)
// sets kernel_default and keeps only what someone grafted below it.
// FailedPrecondition when the tree holds something that cannot be recreated
// from a dump (a bpf filter's program, a size table), so the caller refuses
// to replace it instead of losing it.
Result<QdiscTreeSnapshot> plan_snapshot(const std::vector<TcObject>& device);

// One request of a restore.
struct ReplayStep {
  TcObject object;
  int flags = 0;           // NLM_F_CREATE | NLM_F_REPLACE / NLM_F_EXCL
  bool exists_ok = false;  // EEXIST means "created implicitly by its parent"
};

// The requests that rebuild `snapshot` on `ifindex`: the root with
// NLM_F_CREATE|NLM_F_REPLACE (it replaces ours), classes and filters with
// NLM_F_CREATE|NLM_F_EXCL. Qdiscs below the root use NLM_F_REPLACE as well:
// their parent class may already hold a leaf the kernel created itself (mq's
// per-queue qdiscs), which only a replace grafts over. EEXIST is tolerated
// for classes (mq/prio create theirs with the qdisc) and u32 hash tables
// (the kernel creates a filter's root table with the filter). DataLoss for a
// malformed snapshot; InvalidArgument when it is our own root.
Result<std::vector<ReplayStep>> plan_replay(const QdiscTreeSnapshot& snapshot, int ifindex,
                                            uint32_t our_handle);

// "" when both snapshots describe the same tree (order ignored), else what differs.
std::string snapshot_difference(const QdiscTreeSnapshot& expected, const QdiscTreeSnapshot& actual);

// ------------------------------------------------------------ executors

Result<QdiscTreeSnapshot> snapshot_root(NlSocket& sock, int ifindex);

enum class RestoreOutcome {
  kRestored,         // our root was replaced by the snapshot's tree
  kAlreadyRestored,  // our root was not there and the tree equals the snapshot
  kForeignRoot,      // our root was not there and the tree differs: left alone
};
std::string_view outcome_name(RestoreOutcome outcome);

// Idempotent. Touches nothing unless the root is `our_handle`; then deletes
// it (kernel_default: the kernel reattaches its default) or replays the
// snapshot over it, and verifies the result against the snapshot (DataLoss
// with the difference when the kernel did not rebuild it exactly).
Result<RestoreOutcome> restore_root(NlSocket& sock, int ifindex, uint32_t our_handle,
                                    const QdiscTreeSnapshot& snapshot);

}  // namespace nq::net
