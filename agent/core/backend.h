// What the injection manager needs from the code that touches the kernel.
// The network backend (agent/net/network_faults.h) is the real one; unit tests
// of the manager's bookkeeping substitute a recording double.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "agent/core/spec.h"
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
  // Start-up: remove what an earlier incarnation left on one link.
  virtual Status reconcile(const nodequake::v1::journal::LinkOwned& link) = 0;
  // Housekeeping (called from the expiry loop): drop what no fault needs
  // any more, such as an idle program kept attached for the next fault.
  virtual void release_idle() = 0;
  // Shutdown, after every injection was reverted: drop everything.
  virtual void release_all() = 0;
};

}  // namespace nq::core
