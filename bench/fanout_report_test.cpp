// nq-bench-fanout's pure parts: smaps_rollup parsing, the goal, the table
// and the JSON.
#include "bench/fanout_report.h"

#include <gtest/gtest.h>

namespace nq::bench {
namespace {

constexpr const char* kRollup =
    "55d0c0a00000-7ffd5b1f3000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:               19456 kB\nPss:                4711 kB\nPss_Anon:           2100 kB\n"
    "Pss_File:           2611 kB\nShared_Clean:      16000 kB\n";

TEST(SmapsRollup, ReadsPssNotItsBreakdown) {
  auto pss = parse_smaps_rollup_pss(kRollup);
  ASSERT_TRUE(pss.ok()) << pss.error().message();
  EXPECT_EQ(*pss, 4711u);
}

TEST(SmapsRollup, MissingPssNamesTheField) {
  auto pss = parse_smaps_rollup_pss("Rss: 12 kB\nPss_Anon: 3 kB\n");
  ASSERT_FALSE(pss.ok());
  EXPECT_EQ(pss.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(pss.error().message().find("smaps_rollup.Pss"), std::string::npos);
}

TEST(ProcStat, UtimePlusStimeAfterACommandWithSpaces) {
  // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  //         utime stime ...
  auto t =
      parse_stat_cpu_ticks("42 (node agent) S 1 42 42 0 -1 4194560 10 0 0 0 120 35 0 0 20 0\n");
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(*t, 155u);
  EXPECT_FALSE(parse_stat_cpu_ticks("42 (x) S 1 2").ok());
}

FanoutReport report_with(std::vector<double> apply, std::vector<double> ks) {
  FanoutReport r;
  r.agents = 100;
  r.runs = static_cast<int>(apply.size());
  r.warmup = 1;
  r.submit_via = "api";
  r.fault = "bandwidth";
  r.cold.push_back({2500, 1, 5, 900, 900, 0, 880, 40, 30});
  for (size_t i = 0; i < apply.size(); ++i) {
    FanoutRun run;
    run.apply_all_acked_ms = apply[i];
    run.killswitch_ms = ks[i];
    run.all_reverted_ms = ks[i];
    r.measured.push_back(run);
  }
  r.agents_memory = {100, 100 * 19 * 1024, 100 * 4 * 1024, 100 * 2 * 1024};
  return r;
}

TEST(FanoutReport, GoalIsAboutTheP99OfBothFigures) {
  const FanoutGoals g;
  // 20 samples: the nearest-rank p99 is the largest.
  std::vector<double> fast(20, 300.0), ks(20, 400.0);
  EXPECT_TRUE(goal_met(report_with(fast, ks), g));
  ks.back() = 1000.5;
  EXPECT_FALSE(goal_met(report_with(fast, ks), g));
  ks.back() = 400;
  fast.front() = 1200;
  EXPECT_FALSE(goal_met(report_with(fast, ks), g));
  // No sample: nothing was shown.
  EXPECT_FALSE(goal_met(report_with({}, {}), g));
}

TEST(FanoutReport, ColumnPicksTheField) {
  auto r = report_with({1, 2, 3}, {4, 5, 6});
  EXPECT_EQ(column(r.measured, &FanoutRun::all_reverted_ms), (std::vector<double>{4, 5, 6}));
}

TEST(FanoutReport, TableAndJsonCarryTheHeadlineFiguresAndTheColdRun) {
  const FanoutGoals g;
  auto r = report_with({100, 200, 300}, {50, 60, 700});
  const std::string table = render_fanout_table(r, g);
  EXPECT_NE(table.find("apply, all acked"), std::string::npos) << table;
  EXPECT_NE(table.find("kill switch"), std::string::npos);
  EXPECT_NE(table.find("2500"), std::string::npos) << "the cold run is shown";
  EXPECT_NE(table.find("700.0 ms"), std::string::npos) << "p99 of the kill switch";
  EXPECT_NE(table.find("ms: met\n"), std::string::npos) << table;
  // 100 agents x 4 MiB PSS each.
  EXPECT_NE(table.find("PSS 400.0 MiB (4.0 MiB each)"), std::string::npos) << table;

  const auto j = fanout_to_json(r, g);
  EXPECT_DOUBLE_EQ(j["figures"]["apply_all_acked"]["p50_ms"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(j["figures"]["kill_switch_all_reverted"]["p99_ms"].get<double>(), 700);
  EXPECT_EQ(j["cold"].size(), 1u);
  EXPECT_EQ(j["runs_raw"].size(), 3u);
  EXPECT_TRUE(j["goal"]["met"].get<bool>());
  EXPECT_EQ(j["agents_memory"]["pss_kib"].get<uint64_t>(), 100u * 4 * 1024);
}

}  // namespace
}  // namespace nq::bench
