// The delay line's sampler draws as sch_netem does: these are its moments.
#include "agent/delay/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace nq::delay {
namespace {

using namespace std::chrono_literals;
using net::DelayDistribution;

struct Moments {
  double mean = 0, sd = 0, min = 0, median = 0;
};

Moments draw(const DelayModel& model, int n, uint32_t seed = 1) {
  DelaySampler s(model);
  std::mt19937 rng(seed);
  std::vector<double> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) v.push_back(double(s.next(rng()).count()) / 1e6);
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= n;
  for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(m.sd / (n - 1));
  std::sort(v.begin(), v.end());
  m.min = v.front();
  m.median = v[v.size() / 2];
  return m;
}

DelayModel model(std::chrono::nanoseconds delay, std::chrono::nanoseconds jitter,
                 DelayDistribution dist = DelayDistribution::kUniform, uint32_t rho = 0) {
  DelayModel m;
  m.delay = delay;
  m.jitter = jitter;
  m.distribution = dist;
  m.correlation = rho;
  return m;
}

TEST(DelaySampler, WithoutJitterEverySampleIsTheDelay) {
  DelaySampler s(model(100ms, 0ms));
  for (uint32_t r : {0u, 1u, 0x80000000u, 0xffffffffu}) EXPECT_EQ(s.next(r), 100ms);
}

TEST(DelaySampler, UniformHasTheMeanAndTheSpreadOfItsInterval) {
  const Moments m = draw(model(100ms, 20ms), 200000);
  EXPECT_NEAR(m.mean, 100.0, 0.1);
  EXPECT_NEAR(m.sd, 20.0 / std::sqrt(3.0), 0.1);  // 11.55 ms
  EXPECT_GE(m.min, 80.0);
}

TEST(DelaySampler, UniformCoversTheWholeIntervalEdgeToEdge) {
  DelaySampler s(model(100ms, 20ms));
  EXPECT_EQ(s.next(0), 80ms);
  EXPECT_LT(s.next(0xffffffffu), 120ms);
  EXPECT_GT(s.next(0xffffffffu), 119'999'990ns);
}

TEST(DelaySampler, NormalUsesNetemsTableWithJitterAsSigma) {
  const Moments m = draw(model(500ms, 100ms, DelayDistribution::kNormal), 200000);
  EXPECT_NEAR(m.mean, 500.0, 1.0);
  EXPECT_NEAR(m.sd, 100.0, 2.0);
}

TEST(DelaySampler, ParetoIsSkewedRightWithTheDelayAsMean) {
  const Moments m = draw(model(100ms, 20ms, DelayDistribution::kPareto), 200000);
  EXPECT_NEAR(m.mean, 100.0, 2.0);
  EXPECT_LT(m.median, m.mean - 2.0);
}

TEST(DelaySampler, SamplesAreNeverNegative) {
  const Moments m = draw(model(10ms, 100ms, DelayDistribution::kNormal), 20000);
  EXPECT_GE(m.min, 0.0);
}

TEST(DelaySampler, CorrelationLinksConsecutiveSamplesAndKeepsTheMean) {
  const uint32_t rho75 = 3221225472u;  // 75 % of 2^32
  DelaySampler s(model(100ms, 50ms, DelayDistribution::kUniform, rho75));
  std::mt19937 rng(7);
  std::vector<double> v;
  for (int i = 0; i < 100000; ++i) v.push_back(double(s.next(rng()).count()));
  double mean = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  double num = 0, den = 0;
  for (size_t i = 0; i + 1 < v.size(); ++i) num += (v[i] - mean) * (v[i + 1] - mean);
  for (double x : v) den += (x - mean) * (x - mean);
  EXPECT_GT(num / den, 0.6);  // lag-1 autocorrelation; 0 without correlation
  EXPECT_NEAR(mean / 1e6, 100.0, 2.0);
}

TEST(DelaySampler, SameRandomNumbersSameDelays) {
  DelaySampler a(model(50ms, 10ms, DelayDistribution::kNormal, 1u << 30));
  DelaySampler b(model(50ms, 10ms, DelayDistribution::kNormal, 1u << 30));
  for (uint32_t r = 1; r < 1000000; r += 9973) EXPECT_EQ(a.next(r), b.next(r));
}

}  // namespace
}  // namespace nq::delay
