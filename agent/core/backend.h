// What the injection manager needs from the code that touches the kernel.
// The network backend (agent/net/network_faults.h) does the network faults;
// workload backends (stress, process, I/O) register for their fault kinds.
// Unit tests of the manager's bookkeeping substitute recording doubles.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "agent/core/spec.h"
#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "common/result.h"
#include "nodequake/v1/journal.pb.h"

namespace nq::core {

// Human-readable facts about an applied fault (qdisc handles, attach mode, ...).
using Details = std::map<std::string, std::string>;

// Appends one journal record durably (the manager's journal).
using RecordSink = std::function<Status(const nodequake::v1::journal::Record&)>;

class NetworkBackend {
 public:
  virtual ~NetworkBackend() = default;
  // All or nothing: on error, nothing of this injection remains in the kernel.
  // Kernel objects that outlive a call are journaled (LinkOwned) before they
  // are created.
  virtual Result<Details> apply(const std::string& id, const NetworkFault& fault,
                                const runtime::PodInfo& pod) = 0;
  // A vanished namespace or device counts as reverted.
  virtual Status revert(const std::string& id) = 0;
  // Live facts for List (a delay line's frames, held, lateness); empty if none.
  virtual Details observe(const std::string& /*id*/) const { return {}; }
  // Start-up: remove what an earlier incarnation left on one link.
  virtual Status reconcile(const nodequake::v1::journal::LinkOwned& link) = 0;
  // Housekeeping (called from the expiry loop): drop what no fault needs
  // any more, such as an idle program kept attached for the next fault.
  virtual void release_idle() = 0;
  // Shutdown, after every injection was reverted: drop everything.
  virtual void release_all() = 0;
};

// A backend for faults on the pod's processes, cgroups and files. It owns some
// fault kinds (kinds()); the manager routes Apply, Revert, List and the
// start-up reconcile of journaled resources (ResourceOwned.kind) to it.
class WorkloadBackend {
 public:
  virtual ~WorkloadBackend() = default;
  virtual std::vector<FaultKind> kinds() const = 0;
  // All or nothing, like NetworkBackend::apply. `containers` are the target
  // containers (every container of the pod when the request named none).
  // Resources that outlive the call (processes, frozen cgroups, throttles,
  // files) are journaled (ResourceOwned) before they are created and released
  // (ResourceReleased) once gone.
  virtual Result<Details> apply(const std::string& id, const WorkloadFault& fault,
                                const runtime::PodInfo& pod,
                                const std::vector<runtime::ContainerInfo>& containers) = 0;
  // A vanished pod, cgroup or process counts as reverted.
  virtual Status revert(const std::string& id) = 0;
  // Live facts for List, such as achieved vs requested load; empty if none.
  virtual Details observe(const std::string& /*id*/) const { return {}; }
  // The same figures as numbers, per container, for the metrics; the manager
  // fills in id and pod.
  virtual std::vector<StressLoad> loads(const std::string& /*id*/) const { return {}; }
  // Start-up: undo one resource an earlier incarnation left.
  virtual Status reconcile(const nodequake::v1::journal::ResourceOwned& resource) = 0;
  // Shutdown and kill switch, after every injection was reverted.
  virtual void release_all() {}
};

}  // namespace nq::core
