// The nodequake-agent binary with process and disk faults on a sandbox pod:
// a freeze, a throttle and a fill file survive a kill -9 of the agent and are
// undone by the restarted agent's reconcile; SIGTERM undoes them on the way
// out; container_kill through the API. Checked from outside, as the crash
// test will: freezer.state / cgroup.events, the throttle knob, the file.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "agent/disk/throttle.h"
#include "agent/process/freezer.h"
#include "agent/runtime/local/local_runtime.h"
#include "common/file.h"
#include "tests/node/core/agent_harness.h"
#include "tests/node/disk/disk_helpers.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
constexpr uint64_t kMiB = 1 << 20;
constexpr const char* kPod = "victim";

class AgentWorkloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(env_.up({env_.pod(kPod)}).ok());
    auto fs = runtime::CgroupFs::discover();
    ASSERT_TRUE(fs.ok());
    cgroups_ = std::make_unique<runtime::CgroupFs>(*fs);
    sandbox::LocalRuntime rt({env_.options().state_dir});
    auto pod = rt.get_pod(env_.ns(), kPod);
    ASSERT_TRUE(pod.ok()) << pod.error().message();
    container_ = pod->containers[0];
    auto loop = disk::testing::LoopDevice::create(16 * kMiB);
    ASSERT_TRUE(loop.ok()) << loop.error().message();
    loop_ = std::make_unique<disk::testing::LoopDevice>(std::move(*loop));
    auto tmp = disk::testing::Tmpfs::mount(32 * kMiB);
    ASSERT_TRUE(tmp.ok()) << tmp.error().message();
    tmpfs_ = std::make_unique<disk::testing::Tmpfs>(std::move(*tmp));
    free_before_ = *disk::testing::available_bytes(tmpfs_->dir());
    knob_before_ = throttle_knob();
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  }

  void TearDown() override {
    if (agent_.running()) (void)agent_.stop(SIGTERM);
  }

  // ---- what a crash test checks from outside
  bool frozen() {
    auto cg = process::freezer_cgroup(*cgroups_, container_);
    EXPECT_TRUE(cg.ok());
    auto f = process::is_frozen(*cg);
    return f.ok() && *f;
  }
  std::string throttle_knob() {
    const bool v1 = cgroups_->mounts().v1("blkio") != nullptr;
    auto dir = cgroups_->dir_for(container_.cgroups, v1 ? "blkio" : "");
    auto text = read_file(*dir / (v1 ? std::string(disk::kV1WriteBps) : std::string("io.max")));
    return text.ok() ? *text : text.error().message();
  }
  bool throttled() {
    return throttle_knob().find("7:" + std::to_string(loop_->minor()) + " ") != std::string::npos;
  }
  bool fill_exists() {
    for (const auto& e : std::filesystem::directory_iterator(tmpfs_->dir()))
      if (e.path().filename().string().rfind(".nodequake-fill-", 0) == 0) return true;
    return false;
  }

  grpc::Status apply(const std::string& id, const v1::FaultSpec& spec, v1::ApplyResponse* resp) {
    return rpc(agent_.stub(), &v1::Agent::Stub::Apply, apply_request(id, env_.ns(), kPod, spec),
               resp);
  }

  void apply_all_three() {
    v1::FaultSpec thr;
    thr.mutable_io_throttle()->set_path(loop_->path());
    thr.mutable_io_throttle()->set_write_bytes_per_second(kMiB);
    v1::FaultSpec fill;
    fill.mutable_disk_fill()->set_path(tmpfs_->dir().string());
    fill.mutable_disk_fill()->set_bytes(8 * kMiB);
    v1::FaultSpec freeze;
    freeze.mutable_pod_failure();
    v1::ApplyResponse resp;
    for (auto& [id, spec] : std::vector<std::pair<std::string, v1::FaultSpec>>{
             {"thr", thr}, {"fill", fill}, {"freeze", freeze}}) {
      grpc::Status st = apply(id, spec, &resp);
      ASSERT_TRUE(st.ok()) << id << ": " << st.error_message() << "\n" << agent_.log_tail();
    }
    ASSERT_TRUE(frozen());
    ASSERT_TRUE(throttled()) << throttle_knob();
    ASSERT_TRUE(fill_exists());
    EXPECT_EQ(*disk::testing::available_bytes(tmpfs_->dir()), free_before_ - 8 * kMiB);
  }

  void expect_all_undone() {
    EXPECT_FALSE(frozen());
    EXPECT_EQ(throttle_knob(), knob_before_);
    EXPECT_FALSE(fill_exists());
    EXPECT_EQ(*disk::testing::available_bytes(tmpfs_->dir()), free_before_);
  }

  SandboxEnv env_;
  AgentHarness agent_{env_};
  std::unique_ptr<runtime::CgroupFs> cgroups_;
  runtime::ContainerInfo container_;
  std::unique_ptr<disk::testing::LoopDevice> loop_;
  std::unique_ptr<disk::testing::Tmpfs> tmpfs_;
  uint64_t free_before_ = 0;
  std::string knob_before_;
};

TEST_F(AgentWorkloadTest, KillNineLeavesThemAndTheRestartUndoesThem) {
  apply_all_three();
  auto status = agent_.stop(SIGKILL);
  ASSERT_TRUE(status.ok());
  // Nothing can undo them with the agent dead: that is the reconcile's job.
  EXPECT_TRUE(frozen());
  EXPECT_TRUE(throttled());
  EXPECT_TRUE(fill_exists());

  ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  expect_all_undone();
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 0);
}

TEST_F(AgentWorkloadTest, SigtermUndoesThem) {
  apply_all_three();
  auto status = agent_.stop(SIGTERM);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << agent_.log_tail();
  expect_all_undone();
}

TEST_F(AgentWorkloadTest, RevertAndListThroughTheApi) {
  apply_all_three();
  v1::ListResponse list;
  ASSERT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 3);
  for (const char* id : {"freeze", "thr", "fill"}) {
    v1::RevertRequest req;
    req.set_id(id);
    v1::RevertResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Revert, req, &resp);
    EXPECT_TRUE(st.ok()) << id << ": " << st.error_message();
  }
  expect_all_undone();
}

TEST_F(AgentWorkloadTest, ContainerKillReportsTheKilledProcesses) {
  v1::FaultSpec kill;
  kill.mutable_container_kill();
  v1::ApplyResponse resp;
  grpc::Status st = apply("kill", kill, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << agent_.log_tail();
  EXPECT_EQ(resp.injection().details().at("killed_processes"), "1");
  // Listed until revert (one-shot: nothing to undo), and the pod came back.
  v1::RevertRequest req;
  req.set_id("kill");
  v1::RevertResponse rresp;
  EXPECT_TRUE(rpc(agent_.stub(), &v1::Agent::Stub::Revert, req, &rresp).ok());
  sandbox::LocalRuntime rt({env_.options().state_dir});
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  pid_t pid = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto pod = rt.get_pod(env_.ns(), kPod);
    if (pod.ok() && pod->containers[0].pid > 0 && pod->containers[0].pid != container_.pid) {
      pid = pod->containers[0].pid;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GT(pid, 0) << "the shim did not restart the container";
}

}  // namespace
}  // namespace nq::testing
