// CPU and memory stress through the nodequake-agent binary's API: Apply,
// List (live achieved vs requested), Revert, SIGTERM shutdown, and kill -9 of
// the agent followed by a restart (the stressor leaves by itself through its
// lifeline; the restart reconciles the journal).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "agent/runtime/local/local_runtime.h"
#include "tests/node/core/agent_harness.h"
#include "tests/node/stress/stress_env.h"

namespace nq::stress::testing {
namespace {

using namespace std::chrono_literals;
namespace v1 = nodequake::v1;
using nq::testing::AgentHarness;
using nq::testing::rpc;

constexpr int64_t kMi = 1 << 20;

class AgentStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = nq::testing::SandboxEnv::unavailable_reason(); !why.empty())
      GTEST_SKIP() << why;
    auto up = env_.up({limited_pod(env_, "app", 1000, 512 * kMi)});
    ASSERT_TRUE(up.ok()) << up.error().message();
    auto prio = prioritize_cpu(*env_.cgroups(), container(), env_.options().cgroup_parent);
    ASSERT_TRUE(prio.ok()) << prio.error().message();
    auto port = nq::testing::free_local_port();
    ASSERT_TRUE(port.ok()) << port.error().message();
    metrics_port_ = *port;
    agent_.set_metrics_address("127.0.0.1:" + std::to_string(metrics_port_));
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  }
  void TearDown() override {
    if (agent_.running()) {
      auto st = agent_.stop(SIGTERM);
      ASSERT_TRUE(st.ok());
      EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << agent_.log_tail();
    }
    for (pid_t p : pids_) EXPECT_TRUE(wait_pid_gone(p, 5s)) << "stressor " << p << " survived";
    if (HasFailure()) std::cerr << "agent log:\n" << agent_.log_tail(20000);
  }

  runtime::ContainerInfo container() {
    sandbox::LocalRuntime rt({env_.options().state_dir, "/proc"});
    auto p = rt.get_pod(env_.ns(), "app");
    EXPECT_TRUE(p.ok());
    return p.ok() ? p->containers.at(0) : runtime::ContainerInfo{};
  }

  // Applies and returns the injection's details.
  std::map<std::string, std::string> apply(const std::string& id, const v1::FaultSpec& spec) {
    v1::ApplyResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Apply,
                          nq::testing::apply_request(id, env_.ns(), "app", spec), &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::map<std::string, std::string> d(resp.injection().details().begin(),
                                         resp.injection().details().end());
    if (d.count("stressor_pid")) pids_.push_back(std::stoi(d["stressor_pid"]));
    return d;
  }
  std::map<std::string, std::string> listed(const std::string& id) {
    v1::ListResponse resp;
    EXPECT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &resp).ok());
    for (const auto& inj : resp.injections()) {
      if (inj.id() == id) return {inj.details().begin(), inj.details().end()};
    }
    return {};
  }
  grpc::Status revert(const std::string& id) {
    v1::RevertRequest req;
    req.set_id(id);
    v1::RevertResponse resp;
    return rpc(agent_.stub(), &v1::Agent::Stub::Revert, req, &resp);
  }

  // The value of one stress gauge of this pod's injection `id`; NotFound when
  // the series is absent.
  Result<double> gauge(const std::string& name, const std::string& id, const std::string& measure) {
    NQ_ASSIGN_OR_RETURN(std::string text, nq::testing::http_get_body(metrics_port_, "/metrics"));
    return nq::testing::prometheus_sample(
        text, name, {{"id", id}, {"measure", measure}, {"pod", env_.ns() + "/app"}});
  }

  nq::testing::SandboxEnv env_;
  AgentHarness agent_{env_, "stress-agent"};
  uint16_t metrics_port_ = 0;
  std::vector<pid_t> pids_;
};

v1::FaultSpec cpu_spec(double load) {
  v1::FaultSpec s;
  s.mutable_cpu_stress()->set_load(load);
  return s;
}

v1::FaultSpec memory_spec(uint64_t bytes) {
  v1::FaultSpec s;
  s.mutable_memory_stress()->set_bytes(bytes);
  return s;
}

TEST_F(AgentStressTest, ApplyListRevert) {
  auto d = apply("cpu-api", cpu_spec(50));
  ASSERT_EQ(d["requested"], "50.0%");
  ASSERT_EQ(pids_.size(), 1u);
  std::this_thread::sleep_for(4s);
  auto achieved = measure_cpu_percent(*env_.cgroups(), container(), 1.0, 5s);
  ASSERT_TRUE(achieved.ok());
  EXPECT_NEAR(*achieved, 50.0, 6.0) << machine_load();
  auto live = listed("cpu-api");
  EXPECT_EQ(live["stressor"], "running");
  EXPECT_NE(live["achieved"], "");
  EXPECT_NE(live["duty"], "");
  ASSERT_TRUE(revert("cpu-api").ok());
  EXPECT_TRUE(pid_gone(pids_[0]));

  // Refused with the field named.
  v1::ApplyResponse resp;
  grpc::Status st =
      rpc(agent_.stub(), &v1::Agent::Stub::Apply,
          nq::testing::apply_request("mem-over", env_.ns(), "app", memory_spec(2048 * kMi)), &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("spec.memory_stress.bytes"), std::string::npos)
      << st.error_message();
}

// The metrics carry the same requested/achieved figures as List, as numbers,
// for exactly as long as the injection lives.
TEST_F(AgentStressTest, MetricsReportRequestedAndAchieved) {
  apply("cpu-m", cpu_spec(50));
  apply("mem-m", memory_spec(64 * kMi));
  ASSERT_EQ(pids_.size(), 2u);
  std::this_thread::sleep_for(4s);

  constexpr const char* kCpu = "nodequake_agent_stress_cpu_ratio";
  constexpr const char* kMem = "nodequake_agent_stress_memory_bytes";
  auto cpu_req = gauge(kCpu, "cpu-m", "requested");
  ASSERT_TRUE(cpu_req.ok()) << cpu_req.error().message();
  EXPECT_DOUBLE_EQ(*cpu_req, 0.5);
  auto cpu_got = gauge(kCpu, "cpu-m", "achieved");
  ASSERT_TRUE(cpu_got.ok()) << cpu_got.error().message();
  EXPECT_NEAR(*cpu_got, 0.5, 0.06) << machine_load();
  // The gauge is the loop's own last window; List shows the same figure.
  EXPECT_NE(listed("cpu-m")["achieved"], "n/a");

  auto mem_req = gauge(kMem, "mem-m", "requested");
  ASSERT_TRUE(mem_req.ok()) << mem_req.error().message();
  EXPECT_DOUBLE_EQ(*mem_req, 64.0 * kMi);
  auto mem_got = gauge(kMem, "mem-m", "achieved");
  ASSERT_TRUE(mem_got.ok()) << mem_got.error().message();
  EXPECT_NEAR(*mem_got, 64.0 * kMi, 0.02 * 64 * kMi);

  ASSERT_TRUE(revert("cpu-m").ok());
  ASSERT_TRUE(revert("mem-m").ok());
  for (const char* measure : {"requested", "achieved"}) {
    auto cpu = gauge(kCpu, "cpu-m", measure);
    ASSERT_FALSE(cpu.ok());
    EXPECT_EQ(cpu.error().status_code(), Code::kNotFound) << cpu.error().message();
    auto mem = gauge(kMem, "mem-m", measure);
    ASSERT_FALSE(mem.ok());
    EXPECT_EQ(mem.error().status_code(), Code::kNotFound) << mem.error().message();
  }
}

TEST_F(AgentStressTest, SigtermRevertsTheStressors) {
  apply("cpu-term", cpu_spec(30));
  apply("mem-term", memory_spec(64 * kMi));
  ASSERT_EQ(pids_.size(), 2u);
  auto st = agent_.stop(SIGTERM);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  for (pid_t p : pids_) EXPECT_TRUE(pid_gone(p)) << p;
}

// kill -9: the stressors leave on their own (lifeline hang-up) right away,
// and the restarted agent reconciles the journal and lists nothing.
TEST_F(AgentStressTest, KillNineThenRestart) {
  apply("cpu-k9", cpu_spec(60));
  apply("mem-k9", memory_spec(128 * kMi));
  ASSERT_EQ(pids_.size(), 2u);
  auto st = agent_.stop(SIGKILL);
  ASSERT_TRUE(st.ok());
  for (pid_t p : pids_)
    EXPECT_TRUE(wait_pid_gone(p, 2s)) << "stressor " << p << " outlived the agent";
  ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  v1::ListResponse resp;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &resp).ok());
  EXPECT_EQ(resp.injections_size(), 0);
  auto idle = measure_cpu_percent(*env_.cgroups(), container(), 1.0, 1s);
  ASSERT_TRUE(idle.ok());
  EXPECT_LT(*idle, 5.0);
}

}  // namespace
}  // namespace nq::stress::testing
