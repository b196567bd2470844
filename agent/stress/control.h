// The page the agent and nq-stressor share (a memfd both map): the agent
// writes the duty cycle the closed loop wants, the stressor reports its state
// and, in memory mode, how much it has touched. One definition for both sides.
//
// The stressor is exec'ed with:
//   fd 3  the control memfd (at least sizeof(StressControl) bytes)
//   fd 4  the read end of the lifeline pipe; the agent holds the only write
//         end. One byte means "go" (the agent has placed the process in the
//         container's cgroups and journaled it); EOF or POLLHUP means the agent
//         is gone or wants us gone, and the stressor exits.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace nq::stress {

inline constexpr int kControlFd = 3;
inline constexpr int kLifelineFd = 4;
inline constexpr uint32_t kControlMagic = 0x5453514e;  // "NQST"
inline constexpr uint32_t kControlVersion = 1;
inline constexpr uint32_t kDutyScale = 1'000'000;  // duty_ppm of 1'000'000 = always busy

enum class StressorState : uint32_t {
  kStarting = 0,
  kRunning = 1,  // cpu: workers started; memory: every page touched
  kFailed = 2,   // `error` holds the errno
};

// Cross-process atomics need to be lock-free (a lock would live in one
// process's memory only); they are on every target we build for.
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

struct StressControl {
  uint32_t magic;
  uint32_t version;
  std::atomic<uint32_t> duty_ppm;  // agent -> stressor
  std::atomic<uint32_t> state;     // stressor -> agent (StressorState)
  std::atomic<int32_t> error;      // stressor -> agent, errno when kFailed
  uint32_t reserved;
  std::atomic<uint64_t> touched_bytes;  // stressor -> agent, memory mode
  std::atomic<uint64_t> periods;        // stressor -> agent, cpu mode: duty periods run
};
static_assert(offsetof(StressControl, duty_ppm) == 8);
static_assert(offsetof(StressControl, touched_bytes) == 24);
static_assert(sizeof(StressControl) == 40);

}  // namespace nq::stress
