// /proc/PID/stat parsing, restart backoff and command resolution.
#include "agent/runtime/local/process.h"

#include <gtest/gtest.h>

#include "agent/runtime/local/sandbox.h"
#include "agent/runtime/local/shim.h"

namespace nq::sandbox {
namespace {

using namespace std::chrono_literals;

TEST(ProcStat, ParsesStateAndStartTimeAfterTheLastParen) {
  // The command may hold spaces and ")": fields are counted from the last ')'.
  const std::string line =
      "4242 (nq echo) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 "
      "1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto st = parse_proc_stat(line);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->start_time, 987654u);
  EXPECT_FALSE(parse_proc_stat("4242 (x) S 1 2").ok());
  EXPECT_FALSE(parse_proc_stat("garbage").ok());
}

TEST(RestartBackoff, DoublesUpToTenSeconds) {
  EXPECT_EQ(restart_backoff(0), 250ms);
  EXPECT_EQ(restart_backoff(1), 500ms);
  EXPECT_EQ(restart_backoff(3), 2000ms);
  EXPECT_EQ(restart_backoff(6), 10s);
  EXPECT_EQ(restart_backoff(100), 10s);
}

PodSpec pod_with(std::vector<std::string> command) {
  PodSpec p;
  p.name = "web-0";
  ContainerSpec c;
  c.name = "web";
  c.command = std::move(command);
  c.where = "pods.yaml:12";
  p.containers.push_back(c);
  return p;
}

TEST(ResolveCommand, DefaultsToTheBundledWorkloadAndSearchesPath) {
  // /bin/sh stands in for the bundled nq-echo: any executable file will do.
  auto def = resolve_command(pod_with({}), 0, "/bin/sh", "/usr/bin:/bin");
  ASSERT_TRUE(def.ok()) << def.error().message();
  EXPECT_EQ(*def, (std::vector<std::string>{"/bin/sh", "--name", "web-0"}));
  auto named = resolve_command(pod_with({"nq-echo", "--http-port", "1"}), 0, "/bin/sh", "");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ((*named)[0], "/bin/sh");

  auto sleep = resolve_command(pod_with({"sleep", "infinity"}), 0, "/bin/sh", "/nonexistent:/bin");
  ASSERT_TRUE(sleep.ok()) << sleep.error().message();
  EXPECT_EQ(*sleep, (std::vector<std::string>{"/bin/sleep", "infinity"}));

  auto missing = resolve_command(pod_with({"no-such-program-nq"}), 0, "/bin/sh", "/usr/bin:/bin");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(),
            "pods.yaml:12: spec.containers[0].command[0]: no executable \"no-such-program-nq\" "
            "found in PATH");
  // Not executable.
  EXPECT_FALSE(resolve_command(pod_with({"/etc/passwd"}), 0, "/bin/sh", "").ok());
  EXPECT_FALSE(resolve_command(pod_with({}), 0, "/nonexistent/nq-echo", "").ok());
}

TEST(Readiness, DefaultCommandIsProbedOnItsHttpPort) {
  ContainerSpec c;
  EXPECT_EQ(effective_readiness_port(c), 8080);
  c.command = {"/bin/sleep", "1"};
  EXPECT_EQ(effective_readiness_port(c), 0);
  c.readiness_port = 5432;
  EXPECT_EQ(effective_readiness_port(c), 5432);
}

TEST(Uid, IsARandomVersion4Uuid) {
  auto a = new_uid(), b = new_uid();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  ASSERT_EQ(a->size(), 36u);
  EXPECT_EQ((*a)[14], '4');
  EXPECT_NE(std::string("89ab").find((*a)[19]), std::string::npos);
}

}  // namespace
}  // namespace nq::sandbox
