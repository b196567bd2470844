// The delayline BPF object of one delay line (ebpf/delayline.bpf.c): an
// owner of bpftool's skeleton, its rule maps, its state in .bss and its TCX
// links (the pod interface's egress and/or ingress, each direction's TAP's
// ingress).
//
// TCX only: a link dies with the process that holds it, which is the line's
// first fail-safety (a killed agent takes the redirect along). clsact
// filters would outlive the agent and black-hole traffic into a TAP that no
// longer exists; on kernels without TCX (< 6.6) attach() fails with
// FAILED_PRECONDITION and the caller picks netem or refuses.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "agent/delay/direction.h"
#include "agent/net/rules.h"
#include "common/result.h"
#include "ebpf/delayline.h"

namespace nq::delay {

class DelaylineProgram {
 public:
  struct Options {
    uint32_t l2_header_len = 14;  // Ethernet (veth)
    std::chrono::nanoseconds stale_after = std::chrono::milliseconds(100);
  };

  // Opens and loads the object; the line is off (no TAP) until attach().
  static Result<DelaylineProgram> load(const Options& options);

  DelaylineProgram(DelaylineProgram&&) noexcept;
  DelaylineProgram& operator=(DelaylineProgram&&) noexcept;
  DelaylineProgram(const DelaylineProgram&) = delete;
  DelaylineProgram& operator=(const DelaylineProgram&) = delete;
  // Closes the links (detaching) and the object.
  ~DelaylineProgram();

  // Writes the scope (a fresh object's maps are empty). Before attach().
  Status set_rules(const net::CompiledRules& rules);
  // A direction's rolls and whether its packets go to the engine. Before
  // attach().
  void configure(Direction d, const DirectionConfig& config);
  // A direction's engine's heartbeat, CLOCK_MONOTONIC ns: a store into the
  // mmapped .bss, safe from any thread.
  void beat(Direction d, uint64_t monotonic_ns) noexcept;

  // Per direction with a TAP (ifindex > 0, at least one): attaches
  // dl_tap_ingress to the TAP, then dl_egress / dl_ingress to the pod
  // interface, so the way back exists before the first packet is taken.
  // Call on a thread inside the namespace of all of them (ifindexes are per
  // namespace). On failure nothing stays attached.
  Status attach(int veth_ifindex, int egress_tap_ifindex, int ingress_tap_ifindex);
  // Closes the pod interface's links: no more packets go to the engines,
  // and frames they still write back keep going through the TAPs' links.
  void detach_interface() noexcept;
  // Closes every link.
  void detach() noexcept;
  bool attached() const noexcept;

  // A direction's counters, summed over CPUs.
  Result<nq_dl_stats> stats(Direction d) const;

 private:
  struct Impl;
  explicit DelaylineProgram(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nq::delay
