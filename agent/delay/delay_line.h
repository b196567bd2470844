// A delay line on one pod interface: the TAP in the pod's namespace, the
// delayline BPF program attached through TCX links, and the engine thread.
// Everything is owned by this object and by the process: destroying it
// reverts the fault, and so does the process dying (links and the TAP go
// with its fds; a stopped process is bypassed through the heartbeat).
#pragma once

#include <memory>
#include <string>

#include "agent/delay/delayline_bpf.h"
#include "agent/delay/engine.h"
#include "agent/delay/plan.h"
#include "agent/delay/tap.h"
#include "common/netns.h"
#include "common/result.h"

namespace nq::delay {

struct DelayLineOptions {
  std::string tap_name = "nqdl%d";
  bool vnet_hdr = true;
  uint64_t seed = 0;  // sampler seed; 0: random
  // SCHED_FIFO priority of the engine thread; 0 keeps it normal. See
  // EngineConfig::realtime_priority.
  int realtime_priority = 1;
};

struct DelayLineStats {
  EngineStats engine;
  nq_dl_stats bpf{};
};

class DelayLine {
 public:
  // Creates the TAP inside `netns`, loads and attaches the program to
  // plan.ifname there, and starts the engine. On failure nothing is left.
  static Result<std::unique_ptr<DelayLine>> start(const Netns& netns, const DelayLinePlan& plan,
                                                  const DelayLineOptions& options = {});
  // stop(), errors ignored.
  ~DelayLine();
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // Graceful revert: detaches the egress program (nothing new is taken),
  // writes every held frame out now, then removes the TAP's program and the
  // TAP. Safe to call twice.
  Status stop();

  const std::string& tap_name() const noexcept { return tap_name_; }
  int tap_ifindex() const noexcept { return tap_ifindex_; }
  int ifindex() const noexcept { return ifindex_; }
  Result<DelayLineStats> stats() const;

 private:
  DelayLine() = default;
  // Destruction order matters (reverse of declaration): the engine stops
  // before the program's links close, and those before the TAP's fd.
  std::unique_ptr<TapDevice> tap_;
  std::unique_ptr<DelaylineProgram> prog_;
  std::unique_ptr<DelayEngine> engine_;
  std::string tap_name_;
  int tap_ifindex_ = 0;
  int ifindex_ = 0;
};

}  // namespace nq::delay
