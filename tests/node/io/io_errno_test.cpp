// io_errno on real kernel objects: the backend with the real ioerrno BPF LSM
// program over sandbox pods, and the whole agent over its socket. Each fault
// is observed by a worker process inside the target pod's cgroup v2 group.
//
// This machine's kernel refuses BPF LSM programs: there the agent must
// refuse io_errno naming bpf_lsm (tested), and the LSM tests skip with
// "BPF LSM unavailable: ..."; the vm tier (Debian's 6.1 with lsm=...,bpf and
// pure cgroup v2) runs them.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/io/io_errno_faults.h"
#include "agent/runtime/cgroup.h"
#include "agent/runtime/local/local_runtime.h"
#include "tests/node/core/agent_harness.h"
#include "tests/node/io/io_helpers.h"
#include "tests/support/sandbox_env.h"

namespace nq::io::testing {
namespace {

namespace fs = std::filesystem;
namespace jr = nodequake::v1::journal;
namespace v1 = nodequake::v1;
using Op = CgroupWorker::Op;
using nq::testing::AgentHarness;
using nq::testing::SandboxEnv;

// Files of the test's own: <dir>/data/file (under the prefix) and
// <dir>/database/file (a sibling whose name only starts like it).
class Files {
 public:
  Files() : dir_(fs::temp_directory_path() / ("nq-io-" + std::to_string(::getpid()))) {
    for (const char* d : {"data", "database"}) {
      fs::create_directories(dir_ / d);
      std::ofstream(dir_ / d / "file") << "content";
    }
  }
  ~Files() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string prefix() const { return (dir_ / "data").string(); }
  std::string inside() const { return (dir_ / "data" / "file").string(); }
  std::string outside() const { return (dir_ / "database" / "file").string(); }

 private:
  fs::path dir_;
};

class IoErrnoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    lsm_problem_ = bpf_lsm_unavailable_reason();
  }

  // Pods "target" and "other", and their cgroup v2 directories.
  void up_pods() {
    auto up = env_.up({env_.pod("target"), env_.pod("other")});
    ASSERT_TRUE(up.ok()) << up.error().message();
    sandbox::LocalRuntime rt({env_.options().state_dir});
    for (const char* name : {"target", "other"}) {
      auto pod = rt.get_pod(env_.ns(), name);
      ASSERT_TRUE(pod.ok()) << pod.error().message();
      ASSERT_FALSE(pod->containers.empty());
      auto dir = env_.cgroups()->dir_for(pod->containers[0].cgroups, "");
      ASSERT_TRUE(dir.ok()) << "pod " << name
                            << " has no cgroup v2 group: " << dir.error().message();
      pods_[name] = *pod;
      dirs_[name] = *dir;
    }
  }
  CgroupWorker worker(const std::string& pod) {
    auto w = CgroupWorker::start(dirs_.at(pod));
    EXPECT_TRUE(w.ok()) << w.error().message();
    if (!w.ok()) std::abort();  // nothing sensible to test without it
    return std::move(*w);
  }
  static CgroupWorker::Outcome run(CgroupWorker& w, Op op, const std::string& path, int n = 20) {
    auto o = w.run(op, path, n);
    EXPECT_TRUE(o.ok()) << o.error().message();
    return o.ok() ? *o : CgroupWorker::Outcome{};
  }

  std::string lsm_problem_;
  SandboxEnv env_;
  Files files_;
  std::map<std::string, runtime::PodInfo> pods_;
  std::map<std::string, fs::path> dirs_;
};

#define REQUIRE_BPF_LSM() \
  if (!lsm_problem_.empty()) GTEST_SKIP() << "BPF LSM unavailable: " << lsm_problem_

// The backend over the real program, journaling into a vector.
class IoErrnoBackendTest : public IoErrnoTest {
 protected:
  void SetUp() override {
    IoErrnoTest::SetUp();
    if (IsSkipped()) return;
    REQUIRE_BPF_LSM();
    up_pods();
    backend_ = std::make_unique<IoErrnoFaults>(
        [this](const jr::Record& r) {
          records_.push_back(r);
          return ok();
        },
        IoErrnoOptions::discover());
  }
  void TearDown() override {
    if (backend_) {
      for (const auto& id : applied_) EXPECT_TRUE(backend_->revert(id).ok());
      backend_->release_all();
    }
  }
  Result<core::Details> apply(const std::string& id, int error, const std::string& name,
                              uint32_t ops, double percent = 100) {
    core::IoErrno e;
    e.path = files_.prefix();
    e.error = error;
    e.error_name = name;
    e.operations = ops;
    e.percent = percent;
    auto d = backend_->apply(id, {core::FaultKind::kIoErrno, e}, pods_.at("target"),
                             pods_.at("target").containers);
    if (d.ok()) applied_.push_back(id);
    return d;
  }

  std::unique_ptr<IoErrnoFaults> backend_;
  std::vector<jr::Record> records_;
  std::vector<std::string> applied_;
};

TEST_F(IoErrnoBackendTest, ReadFailsInTheTargetPodUnderThePrefixOnly) {
  CgroupWorker target = worker("target");
  CgroupWorker other = worker("other");
  ASSERT_EQ(run(target, Op::kRead, files_.inside()).failures, 0);

  auto d = apply("r", EIO, "EIO", core::kIoRead);
  ASSERT_TRUE(d.ok()) << d.error().message();
  ASSERT_EQ(*ioerrno_links(), 3);

  auto in = run(target, Op::kRead, files_.inside());
  EXPECT_FALSE(in.open_failed) << "open is not among the operations";
  EXPECT_EQ(in.failures, in.calls);
  EXPECT_EQ(in.last_errno, EIO);
  // Outside the prefix (a sibling with the same leading bytes), and another pod.
  EXPECT_EQ(run(target, Op::kRead, files_.outside()).failures, 0);
  EXPECT_EQ(run(other, Op::kRead, files_.inside()).failures, 0);
  // Writes were not asked for.
  EXPECT_EQ(run(target, Op::kWrite, files_.inside()).failures, 0);
  EXPECT_EQ(backend_->observe("r").at("calls_failed"), "20");

  ASSERT_TRUE(backend_->revert("r").ok());
  applied_.clear();
  EXPECT_EQ(run(target, Op::kRead, files_.inside()).failures, 0);
  EXPECT_EQ(*ioerrno_links(), 0) << "the last revert detaches the programs";
}

TEST_F(IoErrnoBackendTest, OpenAndWriteFailWithTheirErrno) {
  CgroupWorker target = worker("target");
  CgroupWorker other = worker("other");
  ASSERT_TRUE(apply("o", EACCES, "EACCES", core::kIoOpen).ok());
  auto open = run(target, Op::kOpen, files_.inside());
  EXPECT_EQ(open.failures, open.calls);
  EXPECT_EQ(open.last_errno, EACCES);
  EXPECT_EQ(run(target, Op::kOpen, files_.outside()).failures, 0);
  EXPECT_EQ(run(other, Op::kOpen, files_.inside()).failures, 0);
  ASSERT_TRUE(backend_->revert("o").ok());
  applied_.clear();

  ASSERT_TRUE(apply("w", ENOSPC, "ENOSPC", core::kIoWrite).ok());
  auto write = run(target, Op::kWrite, files_.inside());
  EXPECT_FALSE(write.open_failed);
  EXPECT_EQ(write.failures, write.calls);
  EXPECT_EQ(write.last_errno, ENOSPC);
  EXPECT_EQ(run(target, Op::kRead, files_.inside()).failures, 0);
  EXPECT_EQ(run(other, Op::kWrite, files_.inside()).failures, 0);
  ASSERT_TRUE(backend_->revert("w").ok());
  applied_.clear();
  EXPECT_EQ(run(target, Op::kWrite, files_.inside()).failures, 0);
  EXPECT_EQ(run(target, Op::kOpen, files_.inside()).failures, 0);
}

TEST_F(IoErrnoBackendTest, HalfTheCallsFailAtFiftyPercent) {
  CgroupWorker target = worker("target");
  ASSERT_TRUE(apply("half", EIO, "EIO", core::kIoRead, 50).ok());
  constexpr int kCalls = 1000;
  auto o = run(target, Op::kRead, files_.inside(), kCalls);
  ASSERT_EQ(o.calls, kCalls);
  // Binomial(1000, 0.5): sd 15.8; +-6 sd (405..595) fails a correct
  // program about once in 10^9 runs.
  EXPECT_GE(o.failures, 405);
  EXPECT_LE(o.failures, 595);
  EXPECT_EQ(backend_->observe("half").at("calls_failed"), std::to_string(o.failures));
  EXPECT_EQ(backend_->observe("half").at("calls_matched"), std::to_string(kCalls));
}

TEST_F(IoErrnoBackendTest, JournalsTheAttachmentBeforeItExists) {
  ASSERT_TRUE(apply("j", EIO, "EIO", core::kIoRead).ok());
  ASSERT_EQ(records_.size(), 1u);
  const auto& owned = records_[0].resource_owned();
  EXPECT_EQ(owned.kind(), "io_errno");
  EXPECT_EQ(owned.bpf().pin_path(), "");
  auto id = cgroup_id_of(dirs_.at("target"));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(owned.bpf().cgroup_id(), *id);
  ASSERT_TRUE(backend_->revert("j").ok());
  applied_.clear();
  ASSERT_EQ(records_.size(), 2u);
  EXPECT_EQ(records_[1].resource_released().key(), owned.key());
}

// ------------------------------------------------------------ the agent

class IoErrnoAgentTest : public IoErrnoTest {
 protected:
  void SetUp() override {
    IoErrnoTest::SetUp();
    if (IsSkipped()) return;
    up_pods();
    agent_ = std::make_unique<AgentHarness>(env_);
    Status st = agent_->start();
    ASSERT_TRUE(st.ok()) << st.error().message() << "\n" << agent_->log_tail();
  }
  v1::ApplyRequest request(const std::string& id) {
    v1::FaultSpec spec;
    spec.mutable_io_errno()->set_path(files_.prefix());
    spec.mutable_io_errno()->set_error("EIO");
    spec.mutable_io_errno()->add_operations(v1::IO_OPERATION_READ);
    return nq::testing::apply_request(id, env_.ns(), "target", spec);
  }
  std::unique_ptr<AgentHarness> agent_;
};

TEST_F(IoErrnoAgentTest, ApplyThroughTheAgentOrRefusedNamingBpfLsm) {
  v1::ApplyResponse resp;
  grpc::Status st =
      nq::testing::rpc(agent_->stub(), &v1::Agent::Stub::Apply, request("agent-io"), &resp);
  if (!lsm_problem_.empty()) {
    // This machine: the kernel feature is named, nothing is attached.
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
    EXPECT_NE(st.error_message().find("bpf_lsm"), std::string::npos) << st.error_message();
    EXPECT_EQ(*ioerrno_links(), 0);
    return;
  }
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << agent_->log_tail();
  CgroupWorker target = worker("target");
  CgroupWorker other = worker("other");
  auto in = run(target, Op::kRead, files_.inside());
  EXPECT_EQ(in.failures, in.calls);
  EXPECT_EQ(in.last_errno, EIO);
  EXPECT_EQ(run(other, Op::kRead, files_.inside()).failures, 0);

  v1::ListResponse list;
  ASSERT_TRUE(
      nq::testing::rpc(agent_->stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  ASSERT_EQ(list.injections_size(), 1);
  EXPECT_EQ(list.injections(0).details().at("calls_failed"), "20");

  v1::RevertRequest rq;
  rq.set_id("agent-io");
  v1::RevertResponse rr;
  ASSERT_TRUE(nq::testing::rpc(agent_->stub(), &v1::Agent::Stub::Revert, rq, &rr).ok());
  EXPECT_EQ(run(target, Op::kRead, files_.inside()).failures, 0);
  EXPECT_EQ(*ioerrno_links(), 0);
}

TEST_F(IoErrnoAgentTest, LinksDieWithAKilledAgentAndRestartReconciles) {
  REQUIRE_BPF_LSM();
  v1::ApplyResponse resp;
  grpc::Status st =
      nq::testing::rpc(agent_->stub(), &v1::Agent::Stub::Apply, request("killed"), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << agent_->log_tail();
  ASSERT_EQ(*ioerrno_links(), 3);
  CgroupWorker target = worker("target");
  EXPECT_EQ(run(target, Op::kRead, files_.inside()).failures, 20);

  auto killed = agent_->stop(SIGKILL);
  ASSERT_TRUE(killed.ok());
  // The links go with the agent's last fd; the kernel frees them as the
  // process exits, so this is (nearly) immediate.
  int links = -1;
  for (int i = 0; i < 50 && links != 0; ++i) {
    links = *ioerrno_links();
    if (links != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(links, 0);
  EXPECT_EQ(run(target, Op::kRead, files_.inside()).failures, 0);

  // A restart reconciles the journaled attachment: nothing to undo, and the
  // injection is over.
  ASSERT_TRUE(agent_->start().ok()) << agent_->log_tail();
  v1::ListResponse list;
  ASSERT_TRUE(
      nq::testing::rpc(agent_->stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
  EXPECT_EQ(list.injections_size(), 0);
  EXPECT_EQ(*ioerrno_links(), 0);
  EXPECT_NE(agent_->log_tail(20000).find("ended with the earlier agent"), std::string::npos)
      << agent_->log_tail();
}

}  // namespace
}  // namespace nq::io::testing
