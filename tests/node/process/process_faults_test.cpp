// ProcessFaults on sandbox pods of the test's own: container and pod kill
// (the shim restarts the containers; recovery is timed with the pods' TCP
// echo), pod failure (freezer) and the start-up reconcile that thaws.
#include "agent/process/process_faults.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "agent/runtime/local/local_runtime.h"
#include "agent/runtime/local/process.h"
#include "common/netns.h"
#include "common/traffic.h"
#include "tests/support/sandbox_env.h"

namespace nq::process {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace jr = nodequake::v1::journal;
using Steady = std::chrono::steady_clock;

class ProcessFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = nq::testing::SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto fs = runtime::CgroupFs::discover();
    ASSERT_TRUE(fs.ok()) << fs.error().message();
    cgroups_ = std::make_unique<runtime::CgroupFs>(*fs);
    runtime_ = std::make_unique<sandbox::LocalRuntime>(
        sandbox::LocalRuntime::Options{env_.options().state_dir});
    faults_ = std::make_unique<ProcessFaults>(sink(), *cgroups_);
  }

  core::RecordSink sink() {
    return [this](const jr::Record& r) {
      records_.push_back(r);
      return ok();
    };
  }

  // Brings up one pod (containers "main" running nq-echo, plus "side"
  // sleeping when `two` is set) and returns its name.
  std::string up(const std::string& base, bool two = false) {
    const std::string name = base + env_.suffix();
    sandbox::PodSpec spec = env_.pod(name);
    if (two) {
      sandbox::ContainerSpec side = spec.containers[0];
      side.name = "side";
      side.command = {"/bin/sleep", "100000"};
      side.readiness_port.reset();
      spec.containers.push_back(side);
    }
    auto r = env_.up({spec});
    EXPECT_TRUE(r.ok()) << r.error().message();
    return name;
  }

  runtime::PodInfo pod(const std::string& name) {
    auto p = runtime_->get_pod(env_.ns(), name);
    EXPECT_TRUE(p.ok()) << p.error().message();
    return p.ok() ? *p : runtime::PodInfo{};
  }

  // One echo round trip from inside the pod's netns to its own address.
  Status echo(const std::string& name, std::chrono::milliseconds timeout) {
    NQ_ASSIGN_OR_RETURN(Netns ns, env_.netns(name));
    NQ_ASSIGN_OR_RETURN(std::string ip, env_.ip(name));
    NQ_TRY(run_in_netns(ns, [&] { return traffic::tcp_echo_rtt(ip, 7, 1, timeout); }));
    return ok();
  }

  // Waits until every container runs a pid other than the one in `before`
  // and the echo answers; returns how long that took from `since`.
  Result<std::chrono::milliseconds> wait_recovered(const std::string& name,
                                                   const runtime::PodInfo& before,
                                                   Steady::time_point since) {
    const auto deadline = Steady::now() + 15s;
    for (;;) {
      auto now = runtime_->get_pod(env_.ns(), name);
      bool restarted = now.ok() && now->containers.size() == before.containers.size();
      for (size_t i = 0; restarted && i < before.containers.size(); ++i)
        restarted =
            now->containers[i].pid > 0 && now->containers[i].pid != before.containers[i].pid;
      if (restarted && echo(name, 500ms).ok())
        return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - since);
      if (Steady::now() > deadline) return Error::unavailable("pod did not recover within 15 s");
      std::this_thread::sleep_for(20ms);
    }
  }

  core::WorkloadFault fault(core::FaultKind kind) { return {kind, core::ProcessFault{}}; }

  nq::testing::SandboxEnv env_;
  std::unique_ptr<runtime::CgroupFs> cgroups_;
  std::unique_ptr<sandbox::LocalRuntime> runtime_;
  std::unique_ptr<ProcessFaults> faults_;
  std::vector<jr::Record> records_;
};

TEST_F(ProcessFaultsTest, ContainerKillSigkillsTheContainerAndThePodRecovers) {
  const std::string name = up("kill");
  const runtime::PodInfo before = pod(name);
  ASSERT_EQ(before.containers.size(), 1u);
  const pid_t old_pid = before.containers[0].pid;
  auto old_stat = sandbox::read_proc_stat(old_pid);
  ASSERT_TRUE(old_stat.ok());
  ASSERT_TRUE(echo(name, 2s).ok());

  const auto t0 = Steady::now();
  auto d =
      faults_->apply("ck-1", fault(core::FaultKind::kContainerKill), before, before.containers);
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->at("killed_processes"), "1");
  EXPECT_EQ(d->at("signal"), "SIGKILL");
  EXPECT_FALSE(sandbox::process_alive(old_pid, old_stat->start_time)) << "old pid still runs";

  auto took = wait_recovered(name, before, t0);
  ASSERT_TRUE(took.ok()) << took.error().message();
  std::printf("container_kill: recovered (new pid, echo answers) after %lld ms\n",
              static_cast<long long>(took->count()));
  auto rec = env_.record(name);
  ASSERT_TRUE(rec.ok());
  EXPECT_THAT(rec->containers[0].last_exit, HasSubstr("signal 9"));
  EXPECT_EQ(rec->containers[0].restart_count, 1);

  // v1 froze for the kill: the freeze was journaled and released.
  if (d->at("method") == "freeze+kill") {
    ASSERT_EQ(records_.size(), 2u);
    EXPECT_TRUE(records_[0].resource_owned().has_frozen());
    EXPECT_EQ(records_[1].resource_released().key(), records_[0].resource_owned().key());
    auto cg = freezer_cgroup(*cgroups_, before.containers[0]);
    ASSERT_TRUE(cg.ok());
    EXPECT_FALSE(*is_frozen(*cg));
  }
  // One-shot: revert has nothing to undo.
  EXPECT_TRUE(faults_->revert("ck-1").ok());
}

TEST_F(ProcessFaultsTest, PodKillKillsEveryContainer) {
  const std::string name = up("podkill", /*two=*/true);
  const runtime::PodInfo before = pod(name);
  ASSERT_EQ(before.containers.size(), 2u);
  const auto t0 = Steady::now();
  // Only "main" is named, but pod_kill takes the whole pod.
  auto d = faults_->apply("pk-1", fault(core::FaultKind::kPodKill), before, {before.containers[0]});
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->at("containers"), "main,side");
  EXPECT_EQ(d->at("killed_processes"), "2");
  auto took = wait_recovered(name, before, t0);
  ASSERT_TRUE(took.ok()) << took.error().message();
  std::printf("pod_kill: both containers restarted, echo answers after %lld ms\n",
              static_cast<long long>(took->count()));
  auto rec = env_.record(name);
  ASSERT_TRUE(rec.ok());
  for (const auto& c : rec->containers) EXPECT_THAT(c.last_exit, HasSubstr("signal 9")) << c.name;
}

TEST_F(ProcessFaultsTest, PodFailureFreezesUntilRevert) {
  const std::string name = up("freeze");
  const runtime::PodInfo before = pod(name);
  const pid_t pid = before.containers[0].pid;
  ASSERT_TRUE(echo(name, 2s).ok());

  auto d = faults_->apply("pf-1", fault(core::FaultKind::kPodFailure), before, before.containers);
  ASSERT_TRUE(d.ok()) << d.error().message();
  ASSERT_EQ(records_.size(), 1u);
  EXPECT_EQ(records_[0].resource_owned().kind(), "pod_failure");
  auto cg = freezer_cgroup(*cgroups_, before.containers[0]);
  ASSERT_TRUE(cg.ok());
  EXPECT_TRUE(*is_frozen(*cg));
  auto st = sandbox::read_proc_stat(pid);
  ASSERT_TRUE(st.ok());
  // The v1 freezer parks tasks in the refrigerator (TASK_FROZEN, shown as
  // D); the v2 freezer traps them in a signal-delivery stop (S on 6.1). What
  // proves the freeze on both is that the workload no longer answers.
  if (cg->version == CgroupVersion::kV1)
    EXPECT_EQ(st->state, 'D') << "a task frozen by the v1 freezer shows as D";
  else
    EXPECT_TRUE(st->state == 'S' || st->state == 'D') << "state " << st->state;
  auto probe = echo(name, 1s);
  ASSERT_FALSE(probe.ok()) << "the frozen pod answered";
  EXPECT_EQ(probe.error().status_code(), Code::kDeadlineExceeded) << probe.error().message();
  EXPECT_EQ(faults_->observe("pf-1").at("frozen_now"), "1/1");

  // The shim lives outside the pod's cgroups: it is not frozen, and it did
  // not restart the frozen container (it did not exit).
  auto rec = env_.record(name);
  ASSERT_TRUE(rec.ok());
  auto shim = sandbox::read_proc_stat(rec->shim_pid);
  ASSERT_TRUE(shim.ok());
  EXPECT_NE(shim->state, 'D');

  ASSERT_TRUE(faults_->revert("pf-1").ok());
  EXPECT_FALSE(*is_frozen(*cg));
  EXPECT_TRUE(echo(name, 2s).ok());
  EXPECT_EQ(pod(name).containers[0].pid, pid) << "a freeze must not restart the container";
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[1].resource_released().key(), records_[0].resource_owned().key());
}

TEST_F(ProcessFaultsTest, PodFailureRefusesAnAlreadyFrozenCgroup) {
  const std::string name = up("twice");
  const runtime::PodInfo p = pod(name);
  ASSERT_TRUE(faults_->apply("pf-a", fault(core::FaultKind::kPodFailure), p, p.containers).ok());
  auto again = faults_->apply("pf-b", fault(core::FaultKind::kPodFailure), p, p.containers);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(again.error().message(), HasSubstr("already frozen"));
  ASSERT_TRUE(faults_->revert("pf-a").ok());
  EXPECT_TRUE(echo(name, 2s).ok());
}

TEST_F(ProcessFaultsTest, ReconcileOfAnotherIncarnationThaws) {
  const std::string name = up("crash");
  const runtime::PodInfo p = pod(name);
  ASSERT_TRUE(faults_->apply("pf-c", fault(core::FaultKind::kPodFailure), p, p.containers).ok());
  ASSERT_EQ(records_.size(), 1u);
  const jr::ResourceOwned owned = records_[0].resource_owned();
  // A new backend, as after kill -9 of the agent: it knows only the journal.
  std::vector<jr::Record> none;
  ProcessFaults restarted(
      [&](const jr::Record& r) {
        none.push_back(r);
        return ok();
      },
      *cgroups_);
  ASSERT_TRUE(restarted.reconcile(owned).ok());
  auto cg = freezer_cgroup(*cgroups_, p.containers[0]);
  ASSERT_TRUE(cg.ok());
  EXPECT_FALSE(*is_frozen(*cg));
  EXPECT_TRUE(echo(name, 2s).ok());
  // A second reconcile (the record kept after a failed start) is harmless.
  EXPECT_TRUE(restarted.reconcile(owned).ok());
  (void)faults_->revert("pf-c");
}

}  // namespace
}  // namespace nq::process
