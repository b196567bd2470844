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
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/core/backend.h"
#include "agent/net/netfault_bpf.h"

namespace nq::net {

class NetworkFaults final : public core::NetworkBackend {
 public:
  // `bpf.attach` must be decided (kTcx or kLegacyTc; the agent picks it from
  // the bpf_tcx capability): legacy filters are journaled before attaching.
  NetworkFaults(core::RecordSink journal, NetfaultLoadOptions bpf);
  // Releases handles only: reverting is the manager's decision. TCX links
  // close with the program objects; qdiscs stay for reconcile.
  ~NetworkFaults() override;

  Result<core::Details> apply(const std::string& id, const core::NetworkFault& fault,
                              const runtime::PodInfo& pod) override;
  Status revert(const std::string& id) override;
  Status reconcile(const nodequake::v1::journal::LinkOwned& link) override;

  size_t link_count() const { return links_.size(); }

 private:
  class Link;
  Result<Link*> link_for(const runtime::PodInfo& pod, const std::string& ifname);

  core::RecordSink journal_;
  NetfaultLoadOptions bpf_;
  std::map<std::string, std::unique_ptr<Link>> links_;  // by link key
  std::map<std::string, std::string> link_of_;          // injection id -> link key
};

}  // namespace nq::net
