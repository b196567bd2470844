// Delay samples for the delay line, drawn the way sch_netem draws them
// (net/sched/sch_netem.c: get_crandom() and tabledist()), so a fault means
// the same whichever engine carries it: delay + jitter scaled by a uniform
// value or by an entry of a distribution table (agent/net/netem_dist.h),
// with netem's correlation between consecutive samples. Pure: the caller
// supplies the random numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "agent/net/netem.h"

namespace nq::delay {

using std::chrono::nanoseconds;

struct DelayModel {
  nanoseconds delay{0};
  nanoseconds jitter{0};
  // 0..UINT32_MAX, as netem stores a correlation percentage.
  uint32_t correlation = 0;
  net::DelayDistribution distribution = net::DelayDistribution::kUniform;
};

class DelaySampler {
 public:
  explicit DelaySampler(const DelayModel& model);

  // The delay of the next frame, never negative. `rnd` is a fresh uniform
  // 32-bit random number.
  nanoseconds next(uint32_t rnd);

  const DelayModel& model() const noexcept { return model_; }

 private:
  // netem's get_crandom(): the new value blended with the previous one.
  uint32_t correlated(uint32_t rnd);

  DelayModel model_;
  // netem's table for the distribution (empty for uniform): 8 KiB,
  // generated in a few ms when the line is planned.
  std::vector<int16_t> table_;
  uint64_t last_ = 0;
};

}  // namespace nq::delay
