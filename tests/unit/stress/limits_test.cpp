// The stress backend's pure parts: limit and usage parsing (v1 and v2), the
// usage rate, the closed loop's step function, /proc/PID/stat start times,
// and how exits are described.
#include "agent/stress/limits.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmath>

#include "agent/runtime/local/process.h"
#include "agent/stress/stressor_process.h"

namespace nq::stress {
namespace {

using namespace std::chrono_literals;

TEST(CpuLimit, CpuMaxUnlimited) {
  auto l = parse_cpu_max("max 100000\n");
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_FALSE(l->quota_us.has_value());
  EXPECT_EQ(l->period_us, 100000);
  EXPECT_DOUBLE_EQ(l->cpus(2), 2.0);  // the node's CPUs
}

TEST(CpuLimit, CpuMaxHalfCpu) {
  auto l = parse_cpu_max("50000 100000\n");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->quota_us, 50000);
  EXPECT_DOUBLE_EQ(l->cpus(8), 0.5);
}

TEST(CpuLimit, CpuMaxMalformed) {
  for (const char* bad : {"", "max", "abc 100000", "50000 0", "50000 x", "-5 100000"}) {
    auto l = parse_cpu_max(bad);
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_NE(l.error().message().find("cpu.max"), std::string::npos) << l.error().message();
  }
}

TEST(CpuLimit, CfsQuotaMinusOneIsUnlimited) {
  auto l = parse_cfs("-1\n", "100000\n");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->quota_us.has_value());
  EXPECT_DOUBLE_EQ(l->cpus(2), 2.0);
}

TEST(CpuLimit, CfsTwoCpus) {
  auto l = parse_cfs("200000\n", "100000\n");
  ASSERT_TRUE(l.ok());
  EXPECT_DOUBLE_EQ(l->cpus(1), 2.0);
}

TEST(CpuLimit, CfsMalformedNamesTheFile) {
  auto q = parse_cfs("0", "100000");
  ASSERT_FALSE(q.ok());
  EXPECT_NE(q.error().message().find("cpu.cfs_quota_us"), std::string::npos);
  auto p = parse_cfs("1000", "nope");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("cpu.cfs_period_us"), std::string::npos);
}

TEST(MemoryLimit, V2AndV1Forms) {
  auto max = parse_memory_limit("max\n");
  ASSERT_TRUE(max.ok());
  EXPECT_FALSE(max->has_value());
  auto v1_unlimited = parse_memory_limit("9223372036854771712\n");
  ASSERT_TRUE(v1_unlimited.ok());
  EXPECT_FALSE(v1_unlimited->has_value());
  auto half = parse_memory_limit("536870912\n");
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(**half, 536870912u);
  EXPECT_FALSE(parse_memory_limit("12k").ok());
}

TEST(Usage, CpuStatUsageUsec) {
  auto u = parse_cpu_stat_usage_usec(
      "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 0\n");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(*u, 123456u);
  EXPECT_FALSE(parse_cpu_stat_usage_usec("user_usec 1\n").ok());
  // A key that merely starts the same way is not it.
  EXPECT_FALSE(parse_cpu_stat_usage_usec("usage_usecs 5\n").ok());
}

TEST(Usage, RateInCpus) {
  const auto t0 = std::chrono::steady_clock::time_point{} + 10s;
  // 400 ms of CPU in 500 ms: 0.8 CPUs.
  auto r = usage_rate({t0, 1'000'000'000}, {t0 + 500ms, 1'400'000'000});
  ASSERT_TRUE(r.has_value());
  EXPECT_NEAR(*r, 0.8, 1e-9);
  // Two CPUs busy.
  EXPECT_NEAR(*usage_rate({t0, 0}, {t0 + 1s, 2'000'000'000}), 2.0, 1e-9);
  EXPECT_FALSE(usage_rate({t0, 5}, {t0, 10}).has_value());        // no time passed
  EXPECT_FALSE(usage_rate({t0, 50}, {t0 + 1s, 10}).has_value());  // counter reset
}

// The plant the loop drives: the cgroup uses the workload's own CPUs plus
// workers * duty, capped by the quota.
double plant(double workload, double duty, uint32_t workers, double limit) {
  return std::min(limit, workload + duty * workers);
}

TEST(Controller, ConvergesOnAnIdleWorkload) {
  double duty = 0;
  for (int i = 0; i < 20; ++i) duty = next_duty(duty, 0.8, plant(0, duty, 1, 1.0), 1, 0.5);
  EXPECT_NEAR(plant(0, duty, 1, 1.0), 0.8, 0.001);
}

TEST(Controller, LowersTheShareWhenTheWorkloadIsBusy) {
  double duty = 0.8;  // converged for an idle workload
  for (int i = 0; i < 20; ++i) duty = next_duty(duty, 0.8, plant(0.3, duty, 1, 1.0), 1, 0.5);
  EXPECT_NEAR(duty, 0.5, 0.001);
  EXPECT_NEAR(plant(0.3, duty, 1, 1.0), 0.8, 0.001);
}

TEST(Controller, SeveralWorkersShareTheLoad) {
  double duty = 0;
  for (int i = 0; i < 30; ++i) duty = next_duty(duty, 1.2, plant(0.2, duty, 4, 2.0), 4, 0.5);
  EXPECT_NEAR(duty, 0.25, 0.001);
}

TEST(Controller, ClampsToZeroAndOne) {
  // The workload alone exceeds the target: the stressor stops, never negative.
  double duty = 0.3;
  for (int i = 0; i < 10; ++i) duty = next_duty(duty, 0.5, plant(0.9, duty, 1, 1.0), 1, 0.5);
  EXPECT_EQ(duty, 0.0);
  // 100 % of a quota the stressor cannot exceed: duty saturates at 1.
  duty = 0.5;
  for (int i = 0; i < 10; ++i) duty = next_duty(duty, 1.0, plant(0, duty, 1, 0.9), 1, 0.5);
  EXPECT_EQ(duty, 1.0);
  EXPECT_EQ(next_duty(0.5, 1, NAN, 1, 0.5), 0.5);
  EXPECT_EQ(next_duty(0.5, 1, 0, 0, 0.5), 0.0);
}

TEST(Controller, DefaultWorkers) {
  EXPECT_EQ(default_workers(0.25), 1u);
  EXPECT_EQ(default_workers(1.0), 1u);
  EXPECT_EQ(default_workers(1.5), 2u);
  EXPECT_EQ(default_workers(2.0000000001), 2u);
}

TEST(Format, CpusAndBytes) {
  EXPECT_EQ(format_cpus(1), "1 CPU");
  EXPECT_EQ(format_cpus(0.5), "0.5 CPU");
  EXPECT_EQ(format_cpus(2), "2 CPUs");
  EXPECT_EQ(format_bytes(256ull << 20), "256Mi");
  EXPECT_EQ(format_bytes(1536ull << 20), "1.5Gi");
  EXPECT_EQ(format_bytes(100), "100 bytes");
}

TEST(ProcStat, StartTimeAfterAnAwkwardCommandName) {
  // The command name may hold spaces and ')': fields count from the last ')'.
  const std::string text =
      "4242 (nq-st) r) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 3 0 "
      "987654 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto st = sandbox::parse_proc_stat(text);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->start_time, 987654u);
  EXPECT_FALSE(sandbox::parse_proc_stat("4242 (x) S 1 2 3").ok());
}

TEST(Exit, Descriptions) {
  EXPECT_EQ(describe_exit(CLD_EXITED, 1), "exited with status 1");
  EXPECT_EQ(describe_exit(CLD_KILLED, SIGKILL), "killed by signal 9 (Killed)");
}

}  // namespace
}  // namespace nq::stress
