// netem faults whose engine is the eBPF delay line (agent/delay/): one
// DelayLine per injection, held by the agent process.
//
// Fail-safe by construction: the line's TCX links and its non-persistent TAP
// die with the process, so a killed agent leaves traffic undelayed and
// nothing in the kernel. The TAP is still journaled (LinkOwned.delay_tap)
// before it is created, so that the next start can check by name that it
// is gone and delete it if something kept it alive. A line that delays
// ingress (FROM/BOTH) has a second TAP whose name follows from the
// journaled one (ingress_tap_name()), so the journal format is unchanged.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "agent/core/backend.h"
#include "agent/delay/delay_line.h"

namespace nq::net {

class DelayLineFaults {
 public:
  DelayLineFaults(core::RecordSink journal, delay::DelayLineOptions options);
  // Stops every line still held (graceful: detach, drain), without
  // journaling: reverting is the manager's decision, and a line cannot
  // outlive its holder anyway.
  ~DelayLineFaults();
  DelayLineFaults(const DelayLineFaults&) = delete;
  DelayLineFaults& operator=(const DelayLineFaults&) = delete;

  bool holds(const std::string& id) const { return lines_.count(id) > 0; }
  // `fault` is a netem fault resolved to engine ebpf (fault.delay_line set).
  // All or nothing. One line per pod interface so far (whatever its
  // directions): a second one on the same interface is refused with
  // FAILED_PRECONDITION.
  Result<core::Details> apply(const std::string& id, const core::NetworkFault& fault,
                              const runtime::PodInfo& pod);
  // Graceful: detach the egress program, write out what is held, remove the
  // TAP. A vanished namespace counts as reverted.
  Status revert(const std::string& id);
  // The line's live figures (frames, held, lateness p99, bypassed, ...).
  core::Details observe(const std::string& id) const;
  // Shutdown, after every injection was reverted.
  void release_all();

  // Start-up: deletes the journaled TAP (and its ingress twin) in the
  // link's namespace if still there; a vanished or replaced namespace
  // counts as done.
  static Status reconcile(const nodequake::v1::journal::LinkOwned& link);
  // The TAP's name for an injection: "nqdl" + 8 hex digits of a hash of the
  // id (IFNAMSIZ), known before the device exists so it can be journaled.
  static std::string tap_name_for(const std::string& id);
  // The ingress direction's TAP for a journaled (egress) TAP name: "nqdi"
  // instead of "nqdl"; empty for a name not made by tap_name_for().
  static std::string ingress_tap_name(const std::string& tap);

 private:
  struct Held {
    std::string key;  // LinkOwned key: "<netns dev>:<ino>/<ifname>/delay"
    std::string pod;
    std::unique_ptr<delay::DelayLine> line;
  };
  Status release(const std::string& id, Held& held);

  core::RecordSink journal_;
  delay::DelayLineOptions options_;
  std::map<std::string, Held> lines_;  // by injection id
};

}  // namespace nq::net
