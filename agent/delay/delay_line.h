// A delay line on one pod interface: per direction (TO, FROM) a TAP in the
// pod's namespace and an engine thread, and the delayline BPF program
// attached through TCX links.
//
// A TAP and an engine per direction rather than one for both: each
// direction then samples its own delays with its own correlation state and
// its own queue limit, like the two netem qdiscs (interface root and ifb)
// of the netem path, and the TAP a frame is written to says which way it
// goes back (out of the interface or into it) without parsing the frame.
// Everything is owned by this object and by the process: destroying it
// reverts the fault, and so does the process dying (links and the TAP go
// with its fds; a stopped process is bypassed through the heartbeat).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "agent/delay/delayline_bpf.h"
#include "agent/delay/engine.h"
#include "agent/delay/plan.h"
#include "agent/delay/tap.h"
#include "common/netns.h"
#include "common/result.h"

namespace nq::delay {

struct DelayLineOptions {
  std::string tap_name = "nqdl%d";          // the egress (TO) direction's TAP
  std::string ingress_tap_name = "nqdi%d";  // the ingress (FROM) direction's
  bool vnet_hdr = true;
  uint64_t seed = 0;  // sampler seed; 0: random
  // SCHED_FIFO priority of the engine thread; 0 keeps it normal. See
  // EngineConfig::realtime_priority.
  int realtime_priority = 1;
};

struct DelayLineStats {
  EngineStats engine;          // the egress direction's engine (empty without one)
  EngineStats engine_ingress;  // the ingress direction's
  nq_dl_stats bpf{};           // both directions' counters summed
  std::array<nq_dl_stats, NQ_DL_DIRS> bpf_dir{};  // by Direction
};

class DelayLine {
 public:
  // Creates the TAPs inside `netns`, starts the engines, loads and attaches
  // the program to plan.ifname there. On failure nothing is left.
  static Result<std::unique_ptr<DelayLine>> start(const Netns& netns, const DelayLinePlan& plan,
                                                  const DelayLineOptions& options = {});
  // stop(), errors ignored.
  ~DelayLine();
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // Graceful revert: detaches the pod interface's programs (nothing new is
  // taken), writes every held frame out now, then removes the TAPs'
  // programs and the TAPs. Safe to call twice.
  Status stop();

  // The first TAP's name (egress, else ingress); all of them.
  const std::string& tap_name() const noexcept { return tap_names_.front(); }
  const std::vector<std::string>& tap_names() const noexcept { return tap_names_; }
  // 0 for a direction the line does not take.
  int tap_ifindex(Direction d) const noexcept { return tap_ifindex_[static_cast<size_t>(d)]; }
  int ifindex() const noexcept { return ifindex_; }
  Result<DelayLineStats> stats() const;

 private:
  DelayLine() = default;
  // Destruction order matters (reverse of declaration): the engines stop
  // before the program's links close, and those before the TAPs' fds.
  // Arrays by Direction.
  std::array<std::unique_ptr<TapDevice>, NQ_DL_DIRS> taps_;
  std::unique_ptr<DelaylineProgram> prog_;
  std::array<std::unique_ptr<DelayEngine>, NQ_DL_DIRS> engines_;
  std::vector<std::string> tap_names_;
  std::array<int, NQ_DL_DIRS> tap_ifindex_{};
  int ifindex_ = 0;
};

}  // namespace nq::delay
