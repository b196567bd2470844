// The network backend of the injection manager: netem, bandwidth and
// partition faults on pods' interfaces.
//
// Per interface (one namespace + device name) nodequake owns at most:
//   - one netfault BPF object attached at egress and ingress (TCX links that
//     die with the agent, or legacy clsact filters where TCX is missing),
//     holding one rule per active fault;
//   - an HTB root replacing the device's root tree (snapshotted first), with
//     one class + netem/tbf leaf per egress shaping fault;
//   - an ifb device in the pod's namespace with the same HTB tree, fed by the
//     BPF program's ingress redirect, for ingress shaping faults.
// What outlives the process (qdiscs, the ifb, legacy filters) is journaled as
// a LinkOwned record before it is created; reconcile() removes it after a crash.
//
// netem faults resolved to engine ebpf (agent/core/spec_engine.h) go to the
// eBPF delay line instead (agent/net/delay_faults.h): no qdisc, no netfault
// rule, one DelayLine per injection.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "agent/core/backend.h"
#include "agent/net/delay_faults.h"
#include "agent/net/netfault_bpf.h"
#include "agent/net/program_pool.h"

namespace nq::net {

struct NetworkFaultsOptions {
  // `bpf.attach` must be decided (kTcx or kLegacyTc; the agent picks it from
  // the bpf_tcx capability): legacy filters are journaled before attaching.
  NetfaultLoadOptions bpf;
  // Programs loaded ahead of need (the verifier stays off the Apply path).
  size_t spare_programs = 1;
  // How long an interface keeps its (rule-less, so inert) program after its
  // last fault is reverted: attaching a TCX link costs an RCU grace period
  // (~10 ms each way here), which a burst of injections should pay once.
  // Zero detaches with the last revert.
  std::chrono::milliseconds idle_detach{30'000};
  // The delay lines of netem faults with engine ebpf.
  delay::DelayLineOptions delay_line;
};

class NetworkFaults final : public core::NetworkBackend {
 public:
  NetworkFaults(core::RecordSink journal, NetworkFaultsOptions options);
  // Releases handles only: reverting is the manager's decision. TCX links
  // close with the program objects; qdiscs stay for reconcile.
  ~NetworkFaults() override;

  Result<core::Details> apply(const std::string& id, const core::NetworkFault& fault,
                              const runtime::PodInfo& pod) override;
  Status revert(const std::string& id) override;
  core::Details observe(const std::string& id) const override;
  Status reconcile(const nodequake::v1::journal::LinkOwned& link) override;
  void release_idle() override;
  void release_all() override;

  // Interfaces with faults or an idle program.
  size_t link_count() const { return links_.size(); }

 private:
  class Link;
  Result<Link*> link_for(const runtime::PodInfo& pod, const std::string& ifname);
  void release(std::map<std::string, std::unique_ptr<Link>>::iterator it);

  core::RecordSink journal_;
  NetworkFaultsOptions options_;
  ProgramPool pool_;
  std::map<std::string, std::unique_ptr<Link>> links_;  // by link key
  std::map<std::string, std::string> link_of_;          // injection id -> link key
  DelayLineFaults delay_lines_;
};

}  // namespace nq::net
