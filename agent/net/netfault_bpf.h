// The netfault BPF object of one pod interface: loading it (an owner of
// bpftool's skeleton), attaching it to the interface's egress and ingress,
// and moving its maps from one set of compiled rules to the next.
//
// Attachment prefers TCX links (kernel >= 6.6): a link dies with the agent,
// so a crashed agent takes its partitions with it. Older kernels get clsact
// filters at a fixed nodequake priority instead; those outlive the process,
// so they are reported (legacy()) for the journal, and remove_legacy()
// removes them at start-up reconcile.
//
// As clsact filters, ingress shaping takes one more filter: the kernels
// without TCX (6.1) drop what bpf_redirect() hands to an ifb, so a second
// ingress filter right after the program's, with a mirred action, takes the
// packets the program picked to the ifb (see netfault.bpf.c, "The ifb hop").
// It exists while the rules name an ifb, and belongs to the ingress entry of
// legacy(): remove_legacy() removes it with that entry.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "agent/net/rules.h"
#include "common/result.h"

namespace nq::net {

struct NetfaultLoadOptions {
  enum class Attach {
    kAuto,      // TCX where the kernel has it, else clsact filters
    kTcx,       // TCX or fail
    kLegacyTc,  // clsact filters even where TCX works (tests, odd kernels)
  };
  Attach attach = Attach::kAuto;
  // Rodata tunables of the program (see netfault.bpf.c).
  uint32_t l2_header_len = 14;  // Ethernet (veth)
  uint32_t ipv6_ext_headers = 4;
};

class NetfaultProgram {
 public:
  enum class AttachMode { kNone, kTcx, kLegacyTc };

  // A clsact filter of ours: what it takes to remove it later, from another
  // process. parent is the tc parent (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)
  // or ..._INGRESS); clsact_created says whether we created the clsact qdisc.
  struct LegacyAttachment {
    uint32_t parent = 0;
    uint32_t priority = 0;
    uint32_t handle = 0;
    bool clsact_created = false;
    int ifindex = 0;
    bool operator==(const LegacyAttachment&) const = default;
  };
  // Filter priority and handle of legacy attachments ("NQ").
  static constexpr uint32_t kLegacyPriority = 0x4e51;
  static constexpr uint32_t kLegacyHandle = 0x4e51;
  // The ingress filter that takes packets to the ifb: the next priority,
  // so it runs right after the program's filter. Same handle.
  static constexpr uint32_t kLegacyIfbPriority = kLegacyPriority + 1;

  // Opens and loads the object; the maps start empty (no rules, no ifb).
  // On a verifier rejection the error carries the tail of the verifier log.
  static Result<NetfaultProgram> load(const NetfaultLoadOptions& options = {});

  NetfaultProgram(NetfaultProgram&&) noexcept;
  NetfaultProgram& operator=(NetfaultProgram&&) noexcept;
  NetfaultProgram(const NetfaultProgram&) = delete;
  NetfaultProgram& operator=(const NetfaultProgram&) = delete;
  // Closes links (detaching TCX) and fds. Never touches clsact filters:
  // those are for detach() or remove_legacy().
  ~NetfaultProgram();

  // Attaches both programs to `ifindex`. Call on a thread inside the
  // target's network namespace (run_in_netns): ifindexes are per namespace.
  Status attach(int ifindex);
  // Moves the maps to `next` by the ordered operations of diff_rules(). Any
  // thread. If an operation fails, the next apply() starts by reading the
  // maps back, so it repairs whatever the failure left half done. As clsact
  // filters, it also points the ifb filter at next's ifb (creating it first,
  // removing it when no ifb is left), through a netlink socket that attach()
  // opened in the interface's namespace.
  Status apply(const CompiledRules& next);
  // Links: closed. clsact filters (the ifb filter included): removed, and
  // the clsact qdisc if we created it and nothing else is left on it. Call
  // inside the netns. Safe to call twice.
  Status detach();

  AttachMode mode() const noexcept;
  int ifindex() const noexcept;
  std::vector<LegacyAttachment> legacy() const;

  // Removes clsact filters a (possibly dead) NetfaultProgram left (for an
  // ingress entry at kLegacyPriority, the ifb filter at kLegacyIfbPriority
  // too), and the clsact qdiscs it created once nothing else is attached to
  // them. Call inside the netns; filters or devices already gone count as
  // removed.
  static Status remove_legacy(const std::vector<LegacyAttachment>& attachments);

  // What the maps hold now, read from the kernel (slots inactive in the
  // config are left out, as compile_rules() leaves them out).
  Result<CompiledRules> read_maps() const;
  // A slot's counters, summed over CPUs.
  Result<nq_stats> stats(uint32_t slot) const;

 private:
  struct Impl;
  explicit NetfaultProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nq::net
