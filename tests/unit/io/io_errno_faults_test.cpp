#include "agent/io/io_errno_faults.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace nq::io {
namespace {

namespace fs = std::filesystem;
namespace jr = nodequake::v1::journal;

// Everything the backend does, in order: journal records and kernel calls.
struct Log {
  std::vector<std::string> events;
};

class FakeKernel : public IoErrnoKernel {
 public:
  explicit FakeKernel(Log& log) : log_(log) {}
  Status attach() override {
    log_.events.push_back("attach");
    if (attach_error) return Error::from_errno(EPERM, "load ioerrno BPF object");
    attached = true;
    return ok();
  }
  void detach() override {
    log_.events.push_back("detach");
    attached = false;
  }
  void release() override { attached = false; }
  Status put(uint64_t id, const nq_io_config& cfg) override {
    log_.events.push_back("put " + std::to_string(id));
    if (put_error) return Error::from_errno(E2BIG, "set io_errno config");
    configs[id] = cfg;
    return ok();
  }
  Status erase(uint64_t id) override {
    log_.events.push_back("erase " + std::to_string(id));
    configs.erase(id);
    return ok();
  }
  Result<std::optional<nq_io_config>> get(uint64_t id) const override {
    auto it = configs.find(id);
    if (it == configs.end()) return std::optional<nq_io_config>();
    return std::optional<nq_io_config>(it->second);
  }

  bool attached = false;
  bool attach_error = false;
  bool put_error = false;
  std::map<uint64_t, nq_io_config> configs;

 private:
  Log& log_;
};

// A cgroup2 "mount" that is a temporary directory: the backend only stats
// the containers' directories there.
class IoErrnoFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("nq-io-unit-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "pod1" / "main");
    fs::create_directories(root_ / "pod1" / "side");
    fs::create_directories(root_ / "agent");
    runtime::CgroupMounts mounts;
    runtime::CgroupMount m;
    m.v2 = true;
    m.mount_point = root_;
    m.root = "/";
    mounts.mounts.push_back(m);
    IoErrnoOptions opts;
    opts.cgroups.emplace(mounts);
    opts.agent_v2_path = "/agent";
    auto kernel = std::make_unique<FakeKernel>(log_);
    kernel_ = kernel.get();
    backend_ = std::make_unique<IoErrnoFaults>(
        [this](const jr::Record& r) {
          if (r.has_resource_owned()) {
            owned_.push_back(r.resource_owned());
            log_.events.push_back("owned " + r.resource_owned().key());
          }
          if (r.has_resource_released())
            log_.events.push_back("released " + r.resource_released().key());
          return ok();
        },
        std::move(opts), std::move(kernel));
  }
  void TearDown() override { fs::remove_all(root_); }

  runtime::ContainerInfo container(const std::string& name, const std::string& v2) {
    runtime::ContainerInfo c;
    c.name = name;
    c.pid = 42;
    if (!v2.empty()) c.cgroups.by_hierarchy[""] = v2;
    c.cgroups.by_hierarchy["memory"] = "/pod1/" + name;
    return c;
  }
  runtime::PodInfo pod() {
    runtime::PodInfo p;
    p.namespace_name = "ns";
    p.name = "p";
    return p;
  }
  core::WorkloadFault fault(double percent = 100) {
    core::IoErrno e;
    e.path = "/data";
    e.error = 5;
    e.error_name = "EIO";
    e.percent = percent;
    e.operations = core::kIoRead | core::kIoOpen;
    return {core::FaultKind::kIoErrno, e};
  }
  uint64_t id_of(const std::string& rel) { return *cgroup_id_of(root_ / rel); }

  fs::path root_;
  Log log_;
  FakeKernel* kernel_ = nullptr;
  std::vector<jr::ResourceOwned> owned_;
  std::unique_ptr<IoErrnoFaults> backend_;
};

TEST_F(IoErrnoFaultsTest, JournalsBeforeSettingAndReleasesAfterRemoving) {
  auto d = backend_->apply("inj1", fault(), pod(), {container("main", "/pod1/main")});
  ASSERT_TRUE(d.ok()) << d.error().message();
  const uint64_t cg = id_of("pod1/main");
  EXPECT_EQ((*d)["cgroup_ids"], std::to_string(cg));
  EXPECT_EQ((*d)["operations"], "open,read");
  EXPECT_EQ((*d)["error"], "EIO");
  ASSERT_EQ(owned_.size(), 1u);
  EXPECT_EQ(owned_[0].kind(), "io_errno");
  EXPECT_EQ(owned_[0].injection_id(), "inj1");
  EXPECT_EQ(owned_[0].bpf().cgroup_id(), cg);
  EXPECT_EQ(owned_[0].bpf().pin_path(), "");
  EXPECT_TRUE(kernel_->attached);
  ASSERT_TRUE(backend_->revert("inj1").ok());
  EXPECT_FALSE(kernel_->attached);
  const std::string key = IoErrnoFaults::resource_key("inj1", "main");
  EXPECT_EQ(log_.events,
            (std::vector<std::string>{"attach", "owned " + key, "put " + std::to_string(cg),
                                      "erase " + std::to_string(cg), "released " + key, "detach"}));
  // Reverting again (or an unknown id) changes nothing.
  EXPECT_TRUE(backend_->revert("inj1").ok());
  EXPECT_EQ(log_.events.size(), 6u);
}

TEST_F(IoErrnoFaultsTest, RefusesAContainerWithoutCgroupV2) {
  auto d = backend_->apply("inj1", fault(), pod(), {container("main", "")});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(d.error().message().find("cgroup v2"), std::string::npos) << d.error().message();
  EXPECT_TRUE(log_.events.empty());
}

TEST_F(IoErrnoFaultsTest, RefusesSharedGroups) {
  for (const char* shared : {"/", "/agent"}) {
    auto d = backend_->apply("inj1", fault(), pod(), {container("main", shared)});
    ASSERT_FALSE(d.ok()) << shared;
    EXPECT_EQ(d.error().status_code(), Code::kFailedPrecondition);
    EXPECT_NE(d.error().message().find("cgroup v2"), std::string::npos) << d.error().message();
  }
  EXPECT_TRUE(log_.events.empty());
}

TEST_F(IoErrnoFaultsTest, OneInjectionPerContainer) {
  ASSERT_TRUE(backend_->apply("a", fault(), pod(), {container("main", "/pod1/main")}).ok());
  auto second = backend_->apply("b", fault(), pod(), {container("main", "/pod1/main")});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("already has io_errno injection a"), std::string::npos);
  // Another container is fine, and the program stays attached while one is left.
  ASSERT_TRUE(backend_->apply("c", fault(), pod(), {container("side", "/pod1/side")}).ok());
  ASSERT_TRUE(backend_->revert("a").ok());
  EXPECT_TRUE(kernel_->attached);
  EXPECT_EQ(kernel_->configs.count(id_of("pod1/side")), 1u);
  ASSERT_TRUE(backend_->revert("c").ok());
  EXPECT_FALSE(kernel_->attached);
  EXPECT_TRUE(kernel_->configs.empty());
}

TEST_F(IoErrnoFaultsTest, GenerationsDifferPerInjection) {
  ASSERT_TRUE(backend_->apply("a", fault(), pod(), {container("main", "/pod1/main")}).ok());
  const uint32_t first = kernel_->configs.at(id_of("pod1/main")).generation;
  ASSERT_TRUE(backend_->revert("a").ok());
  ASSERT_TRUE(backend_->apply("b", fault(), pod(), {container("main", "/pod1/main")}).ok());
  EXPECT_NE(kernel_->configs.at(id_of("pod1/main")).generation, first);
}

TEST_F(IoErrnoFaultsTest, AFailedSetIsRolledBack) {
  kernel_->put_error = true;
  auto d = backend_->apply("a", fault(), pod(),
                           {container("main", "/pod1/main"), container("side", "/pod1/side")});
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("container main"), std::string::npos) << d.error().message();
  const std::string key = IoErrnoFaults::resource_key("a", "main");
  ASSERT_GE(log_.events.size(), 2u);
  EXPECT_EQ(log_.events[log_.events.size() - 2], "released " + key);
  EXPECT_EQ(log_.events.back(), "detach");
  EXPECT_FALSE(kernel_->attached);
  kernel_->put_error = false;
  EXPECT_TRUE(backend_->apply("a2", fault(), pod(), {container("main", "/pod1/main")}).ok());
}

TEST_F(IoErrnoFaultsTest, ALoadFailureJournalsNothing) {
  kernel_->attach_error = true;
  auto d = backend_->apply("a", fault(), pod(), {container("main", "/pod1/main")});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().status_code(), Code::kPermissionDenied);
  EXPECT_TRUE(owned_.empty());
}

TEST_F(IoErrnoFaultsTest, ObserveSumsTheProgramsCounters) {
  ASSERT_TRUE(backend_
                  ->apply("a", fault(50), pod(),
                          {container("main", "/pod1/main"), container("side", "/pod1/side")})
                  .ok());
  kernel_->configs[id_of("pod1/main")].matched = 30;
  kernel_->configs[id_of("pod1/main")].failed = 10;
  kernel_->configs[id_of("pod1/side")].matched = 10;
  kernel_->configs[id_of("pod1/side")].failed = 10;
  auto d = backend_->observe("a");
  EXPECT_EQ(d["calls_matched"], "40");
  EXPECT_EQ(d["calls_failed"], "20");
  EXPECT_EQ(d["failed_percent"], "50.0");
  EXPECT_TRUE(backend_->observe("nope").empty());
}

TEST_F(IoErrnoFaultsTest, ReconcileHasNothingToUndo) {
  jr::ResourceOwned res;
  res.set_key("io_errno/a/main");
  res.set_injection_id("a");
  res.set_kind("io_errno");
  res.mutable_bpf()->set_program("ioerrno");
  res.mutable_bpf()->set_cgroup_id(1234);
  EXPECT_TRUE(backend_->reconcile(res).ok());
  EXPECT_TRUE(log_.events.empty());
  res.mutable_bpf()->set_pin_path("/sys/fs/bpf/x");
  EXPECT_EQ(backend_->reconcile(res).error().status_code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace nq::io
