// The delay engine: one thread that reads the frames the BPF program sends
// into the TAP, gives each a due time (now + a DelaySampler sample), holds
// them in a DelayQueue and writes each back at its due time.
//
// Timing: an absolute CLOCK_MONOTONIC timerfd armed for the earliest due
// time, with the thread's timer slack at 1 ns (the default 50 us would be
// the error floor). The same thread stores the heartbeat, so a hung or
// stopped engine stops beating and the BPF program bypasses it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "agent/delay/sampler.h"
#include "common/fd.h"
#include "common/result.h"

namespace nq::delay {

struct EngineConfig {
  DelayModel model;
  uint32_t limit = 1000;  // frames held
  bool preserve_order = false;
  std::chrono::nanoseconds heartbeat_period = std::chrono::milliseconds(10);
  // Bytes of virtio_net_hdr in front of each frame (TapDevice::vnet_hdr_len()).
  size_t vnet_hdr_len = 0;
  uint64_t seed = 0;  // 0: from std::random_device
  // SCHED_FIFO priority of the engine thread (0: the normal scheduler). On
  // a busy node a normal thread wakes up milliseconds late, and every frame
  // with it; a real-time thread preempts the load. The engine only runs
  // when a frame arrives or falls due, and the kernel's RT throttling caps
  // it anyway. Without CAP_SYS_NICE the thread stays normal (stats say so).
  int realtime_priority = 0;
};

struct EngineStats {
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t dropped_full = 0;  // over the limit
  uint64_t write_errors = 0;
  uint64_t held = 0;
  std::chrono::nanoseconds cpu{0};  // the engine thread's CPU time
  bool realtime = false;            // runs under SCHED_FIFO
  // How late frames were written back (write time - due time), as a log2
  // histogram: lateness[i] counts frames less than 2^i us late (the last
  // bucket: later still). The line's own timing error, whatever the load
  // does to the probes measuring it.
  std::array<uint64_t, 16> lateness{};
  // The upper bound of the bucket that holds the p-th percentile (0..100).
  std::chrono::microseconds lateness_percentile(double p) const;
};

class DelayEngine {
 public:
  // Called on the engine thread with CLOCK_MONOTONIC ns, every period.
  using Beat = std::function<void(uint64_t)>;

  // Starts the thread on `tap_fd` (non-blocking, owned by the caller, open
  // until the engine is destroyed). The first beat happens before start()
  // returns.
  static Result<std::unique_ptr<DelayEngine>> start(int tap_fd, const EngineConfig& config,
                                                    Beat beat);
  // Stops without draining (held frames are dropped) and joins.
  ~DelayEngine();
  DelayEngine(const DelayEngine&) = delete;
  DelayEngine& operator=(const DelayEngine&) = delete;

  // Stops reading and beating, writes every held frame at once (earliest
  // due first) and joins. Detach the egress program first, so nothing new
  // arrives. Safe to call twice.
  Status drain_and_stop();

  EngineStats stats() const;

 private:
  DelayEngine(int tap_fd, const EngineConfig& config, Beat beat);
  void run();
  void stop(bool drain);

  const int tap_fd_;
  const EngineConfig config_;
  const Beat beat_;
  UniqueFd epoll_, release_timer_, beat_timer_, wake_;
  std::atomic<bool> drain_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> frames_in_{0}, frames_out_{0}, dropped_full_{0}, write_errors_{0}, held_{0};
  std::atomic<int64_t> cpu_ns_{0};
  std::atomic<bool> realtime_{false};
  std::array<std::atomic<uint64_t>, 16> lateness_{};
  std::thread thread_;
};

}  // namespace nq::delay
