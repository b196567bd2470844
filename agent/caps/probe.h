// Kernel capabilities, probed once at agent start. Faults that need a missing
// feature are refused with FAILED_PRECONDITION naming it; Probe and the
// nodequake_agent_capability metric report them all.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/runtime/cgroup.h"
#include "common/result.h"

namespace nq {

struct Capability {
  std::string name;  // "sch_netem", "bpf_tcx", "cgroup_v1.memory", ...
  bool available = false;
  std::string detail;  // how it was probed, or why it is missing, for humans
};

// Probes everything (needs root for the netlink and BPF parts; without it those
// are reported unavailable with the reason):
// - sch_netem, sch_tbf, sch_htb, sch_clsact: add the qdisc on lo of a scratch
//   network namespace; ifb: create an ifb device there; bpf_tcx: attach a
//   trivial sched_cls program to lo with a TCX link. The namespace lives on a
//   thread of its own and vanishes with it, so there is nothing to clean up.
//   tun: a non-persistent TAP there (the delay line's). A missing sch_netem
//   is loaded from the host's module tree when it is there
//   (agent/caps/modules.h), else its detail says why not.
// - bpf_prog_sched_cls, bpf_prog_cgroup_skb, bpf_prog_lsm: libbpf's probe;
//   bpf_lsm: the lsm program type plus "bpf" in /sys/kernel/security/lsm.
// - cgroup_v1.<controller>, cgroup_v2, cgroup_v2.<controller>: /proc/self/mountinfo
//   and the v2 root's cgroup.controllers.
std::vector<Capability> probe_kernel();

// The parts of probe_kernel(), for tests and for callers that need only some.
std::vector<Capability> probe_network();
std::vector<Capability> probe_bpf();
std::vector<Capability> probe_cgroups();

// ---- cgroups (pure) ----

// Capabilities from the node's cgroup mounts (agent/runtime/cgroup.h) and the
// text of the v2 root's cgroup.controllers ("" when there is none).
std::vector<Capability> cgroup_capabilities(const runtime::CgroupMounts& mounts,
                                            std::string_view v2_controllers);

// ---- lookup ----

class Capabilities {
 public:
  explicit Capabilities(std::vector<Capability> all);

  // False for a capability that is missing or was never probed.
  bool has(std::string_view name) const;
  // OK, or FailedPrecondition: "<needed_for> needs <name>, which this kernel lacks: <detail>".
  Status require(std::string_view name, std::string_view needed_for) const;
  const std::vector<Capability>& all() const noexcept { return all_; }

 private:
  const Capability* find(std::string_view name) const;
  std::vector<Capability> all_;
};

}  // namespace nq
