#include "agent/delay/sampler.h"

#include "agent/net/netem_dist.h"

namespace nq::delay {

DelaySampler::DelaySampler(const DelayModel& model)
    : model_(model), table_(net::netem_distribution_table(model.distribution)) {}

uint32_t DelaySampler::correlated(uint32_t rnd) {
  if (model_.correlation == 0) return rnd;
  // As netem: answer = (value * (2^32 - rho) + last * rho) >> 32. Like
  // netem's, this narrows the distribution as rho grows (the mean stays).
  const uint64_t rho = uint64_t(model_.correlation) + 1;
  const uint64_t answer = (uint64_t(rnd) * ((uint64_t(1) << 32) - rho) + last_ * rho) >> 32;
  last_ = answer;
  return static_cast<uint32_t>(answer);
}

nanoseconds DelaySampler::next(uint32_t rnd) {
  const int64_t mu = model_.delay.count();
  const int64_t sigma = model_.jitter.count();
  if (sigma == 0) return model_.delay;
  const uint32_t r = correlated(rnd);
  int64_t value;
  if (table_.empty()) {
    // Uniform over [mu - sigma, mu + sigma). netem takes rnd % (2 sigma),
    // which caps sigma at 2^31 ns; scaling by 2^-32 has no such cap. The
    // product fits: sigma <= 60 s < 2^36, times 2^33.
    value = mu - sigma + static_cast<int64_t>((uint64_t(r) * uint64_t(2 * sigma)) >> 32);
  } else {
    // One jitter above the mean is kNetemDistScale in the table.
    const int64_t t = table_[r % table_.size()];
    const int64_t scaled = sigma * t;  // |t| <= 32767: fits for sigma <= 60 s
    const int64_t half = net::kNetemDistScale / 2;
    value = mu + (scaled >= 0 ? scaled + half : scaled - half) / net::kNetemDistScale;
  }
  return nanoseconds(value < 0 ? 0 : value);
}

}  // namespace nq::delay
