#include "agent/net/netem_dist.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>

namespace nq::net {
namespace {

// iproute2 builds the normal inverse CDF by sweeping x over [-10, 10.05) in
// steps of 5e-5 and recording, for each of 16384 CDF buckets, the last x that
// landed in it; every 4th bucket becomes a table entry. The accumulated
// floating-point steps are part of the result, so the sweep is reproduced
// exactly rather than computed with an inverse erf.
constexpr int kSweepBuckets = 16384;

std::vector<double> normal_inverse_cdf() {
  std::vector<double> table(kSweepBuckets + 1, 0.0);
  for (double x = -10.0; x < 10.05; x += .00005) {
    const double cdf = .5 + .5 * std::erf(x / std::sqrt(2.0));
    const auto i = static_cast<size_t>(std::rint(kSweepBuckets * cdf));
    table[i] = x;
  }
  return table;
}

int16_t clamp16(int v) {
  return static_cast<int16_t>(std::clamp(v, SHRT_MIN, SHRT_MAX));
}

// Pareto with shape a = 3, shifted and scaled to mean 0 and unit "jitter"
// (NISTnet's constants), for the CDF point (65536 - i) / 65536.
double pareto_value(int i) {
  constexpr double a = 3.0;
  double v = 1.0 / std::pow(double(i) / 65536.0, 1.0 / a);
  v -= 1.5;
  v *= (4.0 / 3.0) * double(kNetemDistScale);
  return std::min(v, 32767.0);
}

std::vector<int16_t> normal_table() {
  const std::vector<double> inv = normal_inverse_cdf();
  std::vector<int16_t> out;
  out.reserve(kNetemDistSize);
  for (int i = 0; i < kSweepBuckets; i += 4)
    out.push_back(clamp16(static_cast<int>(std::rint(inv[i] * kNetemDistScale))));
  return out;
}

std::vector<int16_t> pareto_table() {
  std::vector<int16_t> out;
  out.reserve(kNetemDistSize);
  for (int i = 65536; i > 0; i -= 16)
    out.push_back(static_cast<int16_t>(static_cast<int>(std::rint(pareto_value(i)))));
  return out;
}

// A quarter normal plus three quarters pareto, entry by entry (with C's
// truncating integer division, as the generator does).
std::vector<int16_t> paretonormal_table() {
  const std::vector<double> inv = normal_inverse_cdf();
  std::vector<int16_t> out;
  out.reserve(kNetemDistSize);
  for (int i = 0; i < kSweepBuckets; i += 4) {
    const int normal = static_cast<int>(std::rint(inv[i] * kNetemDistScale));
    const int pareto = static_cast<int>(std::rint(pareto_value(65536 - 4 * i)));
    out.push_back(clamp16((normal + 3 * pareto) / 4));
  }
  return out;
}

}  // namespace

std::vector<int16_t> netem_distribution_table(DelayDistribution dist) {
  switch (dist) {
    case DelayDistribution::kUniform:
      return {};
    case DelayDistribution::kNormal:
      return normal_table();
    case DelayDistribution::kPareto:
      return pareto_table();
    case DelayDistribution::kParetoNormal:
      return paretonormal_table();
  }
  return {};
}

}  // namespace nq::net
