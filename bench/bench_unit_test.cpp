// The benchmark's pure parts, without root: /proc status parsing, the peer
// tools' command lines and their lookup, the agent requests, the report.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "bench/agent_path.h"
#include "bench/peer_exec.h"
#include "bench/proc_memory.h"
#include "bench/report.h"

namespace nq::bench {
namespace {

constexpr const char* kStatus =
    "Name:\tnodequake-agent\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t  412340 kB\n"
    "VmHWM:\t   13100 kB\nVmRSS:\t   11472 kB\nRssAnon:\t    4096 kB\nRssFile:\t    7360 kB\n"
    "RssShmem:\t      16 kB\nThreads:\t9\n";

TEST(ProcStatus, ParsesTheMemoryFields) {
  auto m = parse_proc_status(kStatus);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->rss_kib, 11472u);
  EXPECT_EQ(m->anon_kib, 4096u);
  EXPECT_EQ(m->file_kib, 7360u);
  EXPECT_EQ(m->shmem_kib, 16u);
  EXPECT_EQ(m->hwm_kib, 13100u);
  EXPECT_EQ(m->threads, 9);
  EXPECT_DOUBLE_EQ(m->rss_mib(), 11472.0 / 1024.0);
}

TEST(ProcStatus, MissingVmRssNamesTheField) {
  // A zombie's status has no Vm* lines.
  auto m = parse_proc_status("Name:\tx\nState:\tZ (zombie)\nThreads:\t1\n");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().status_code(), Code::kInvalidArgument);
  EXPECT_NE(m.error().message().find("VmRSS"), std::string::npos);
}

TEST(ProcStatus, ReadsOurOwnProcess) {
  auto m = read_proc_memory(::getpid());
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_GT(m->rss_kib, 0u);
  EXPECT_GE(m->threads, 1);
  EXPECT_LE(m->anon_kib + m->file_kib + m->shmem_kib, m->rss_kib + 4);
}

const PeerTools kTools{"/usr/bin/nsenter", "/usr/sbin/tc", "/usr/sbin/iptables"};

TEST(PeerCommands, TcBandwidthIsTheUsualTbfLine) {
  PeerCommands c = tc_bandwidth_commands(kTools, 4242, "eth0", "1mbit");
  EXPECT_EQ(join_argv(c.apply),
            "/usr/bin/nsenter --net=/proc/4242/ns/net /usr/sbin/tc qdisc add dev eth0 root tbf "
            "rate 1mbit burst 32kbit latency 400ms");
  EXPECT_EQ(join_argv(c.revert),
            "/usr/bin/nsenter --net=/proc/4242/ns/net /usr/sbin/tc qdisc del dev eth0 root");
}

TEST(PeerCommands, IptablesPartitionAddsAndDeletesTheSameRule) {
  PeerCommands c = iptables_partition_commands(kTools, 7, "10.215.3.3");
  EXPECT_EQ(join_argv(c.apply),
            "/usr/bin/nsenter --net=/proc/7/ns/net /usr/sbin/iptables -A OUTPUT -d "
            "10.215.3.3/32 -j DROP");
  ASSERT_EQ(c.apply.size(), c.revert.size());
  for (size_t i = 0; i < c.apply.size(); ++i) {
    if (c.apply[i] != "-A") {
      EXPECT_EQ(c.apply[i], c.revert[i]) << i;
    }
  }
  EXPECT_NE(std::find(c.revert.begin(), c.revert.end(), "-D"), c.revert.end());
}

class PathLookup : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("nqb-unit-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "a");
    std::filesystem::create_directories(dir_ / "b");
    std::ofstream(dir_ / "a" / "tool") << "not executable\n";
    std::ofstream(dir_ / "b" / "tool") << "#!/bin/sh\n";
    ::chmod((dir_ / "b" / "tool").c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(PathLookup, SkipsNonExecutablesLikeExecvp) {
  const std::string path = (dir_ / "a").string() + "::" + (dir_ / "b").string();
  auto found = find_in_path("tool", path);
  ASSERT_TRUE(found.ok()) << found.error().message();
  EXPECT_EQ(*found, (dir_ / "b" / "tool").string());
}

TEST_F(PathLookup, MissingToolIsNotFoundWithItsName) {
  auto found = find_in_path("no-such-tool", (dir_ / "a").string());
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().status_code(), Code::kNotFound);
  EXPECT_NE(found.error().message().find("no-such-tool"), std::string::npos);
}

TEST(RunTimed, SuccessIsTimed) {
  auto t = run_timed({"/bin/true"});
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_GT(t->count(), 0);
}

TEST(RunTimed, FailureIsAnErrorWithExitCodeAndStderr) {
  auto t = run_timed({"/bin/sh", "-c", "echo tc said no >&2; exit 2"});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("exit code 2"), std::string::npos) << t.error().message();
  EXPECT_NE(t.error().message().find("tc said no"), std::string::npos) << t.error().message();
}

TEST(RunTimed, MissingBinaryIsAnError) {
  auto t = run_timed({"/nonexistent/tc"});
  ASSERT_FALSE(t.ok());
}

const BenchPod kClient{"nqb-1", "client", "10.215.1.2", "/run/netns/nqb1-nqb-1.client", 99};

TEST(AgentRequests, PartitionScopesToTheServer) {
  auto r = partition_request("id-1", kClient, "10.215.1.3", std::chrono::seconds(300));
  EXPECT_EQ(r.id(), "id-1");
  EXPECT_EQ(r.target().pod().namespace_(), "nqb-1");
  EXPECT_EQ(r.target().pod().name(), "client");
  EXPECT_EQ(r.ttl().seconds(), 300);
  ASSERT_TRUE(r.spec().has_partition());
  const auto& path = r.spec().partition().path();
  EXPECT_EQ(path.direction(), nodequake::v1::DIRECTION_TO);
  EXPECT_EQ(path.interface(), "eth0");
  ASSERT_EQ(path.scope().remote_cidrs_size(), 1);
  EXPECT_EQ(path.scope().remote_cidrs(0), "10.215.1.3/32");
}

TEST(AgentRequests, BandwidthLimitsEgress) {
  auto r = bandwidth_request("id-2", kClient, 1'000'000, std::chrono::seconds(60));
  ASSERT_TRUE(r.spec().has_bandwidth());
  EXPECT_EQ(r.spec().bandwidth().rate_bps(), 1'000'000u);
  EXPECT_EQ(r.spec().bandwidth().path().direction(), nodequake::v1::DIRECTION_TO);
  EXPECT_EQ(r.spec().bandwidth().path().scope().remote_cidrs_size(), 0);
}

BenchReport sample_report() {
  BenchReport r;
  r.runs = 4;
  r.check_every = 2;
  r.kernel = "6.18.0";
  r.cpus = 2;
  r.journal_dir = "/var/tmp/x";
  r.journal_fs = "ext4";
  r.operations.push_back({"partition apply", {0.4, 0.5, 0.41, 0.9}, {6.2, 6.0, 7.0, 9.8}});
  r.rss_idle.rss_kib = 11 * 1024;
  r.rss_after.rss_kib = 12 * 1024;
  r.injections = 8;
  r.nodequake_checks.record(true, "a");
  r.exec_checks.record(false, "partition run 0 apply: expected active, saw gone");
  return r;
}

TEST(Report, TableHasPercentilesRatioRssAndChecks) {
  const std::string t = render_table(sample_report(), Goals{});
  // p50 by nearest rank of {0.4, 0.41, 0.5, 0.9} is 0.41; exec's is 6.2.
  EXPECT_NE(t.find("partition apply      0.41 ms"), std::string::npos) << t;
  EXPECT_NE(t.find("6.20 ms"), std::string::npos) << t;
  EXPECT_NE(t.find("15.1x"), std::string::npos) << t;
  EXPECT_NE(t.find("agent RSS idle 11.0 MiB"), std::string::npos) << t;
  EXPECT_NE(t.find("after 8 injections 12.0 MiB"), std::string::npos) << t;
  EXPECT_NE(t.find("nodequake 1/1, exec 0/1 passed"), std::string::npos) << t;
  EXPECT_NE(t.find("FAILED (exec): partition run 0 apply"), std::string::npos) << t;
  EXPECT_NE(t.find("p50 <= 2 ms: met"), std::string::npos) << t;
}

TEST(Report, JsonCarriesTheSameFiguresAndGoals) {
  const auto j = to_json(sample_report(), Goals{});
  EXPECT_EQ(j["runs"], 4);
  EXPECT_EQ(j["journal"]["fs"], "ext4");
  ASSERT_EQ(j["operations"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["operations"][0]["nodequake"]["p50_ms"].get<double>(), 0.41);
  EXPECT_DOUBLE_EQ(j["operations"][0]["exec"]["p99_ms"].get<double>(), 9.8);
  EXPECT_NEAR(j["operations"][0]["ratio_p50"].get<double>(), 6.2 / 0.41, 1e-9);
  EXPECT_EQ(j["agent_rss"]["idle"]["rss_kib"], 11 * 1024);
  EXPECT_EQ(j["effect_checks"]["exec"]["passed"], 0);
  EXPECT_EQ(j["goals"]["p50_met"], true);
  EXPECT_EQ(j["goals"]["ratio_met"], true);
  EXPECT_EQ(j["goals"]["idle_rss_met"], true);
}

TEST(Report, GoalsNotMetAreSaid) {
  BenchReport r = sample_report();
  r.operations[0].nodequake_ms = {3.0, 3.0, 3.0, 3.0};
  r.rss_idle.rss_kib = 20 * 1024;
  const auto j = to_json(r, Goals{});
  EXPECT_EQ(j["goals"]["p50_met"], false);
  EXPECT_EQ(j["goals"]["ratio_met"], false);  // 6.2 / 3 < 10
  EXPECT_EQ(j["goals"]["idle_rss_met"], false);
  EXPECT_NE(render_table(r, Goals{}).find("idle RSS <= 15 MiB: NOT met"), std::string::npos);
}

}  // namespace
}  // namespace nq::bench
