// The injection manager's bookkeeping: idempotency, validation, safety, TTL,
// leases, the kill switch, journaling and reconcile. The kernel side is a
// recording double of the backend interface (the real backend runs in the
// node tier); the journal is the real one, in a temporary directory.
#include "agent/core/manager.h"

#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;
namespace jr = nodequake::v1::journal;
using google::protobuf::util::TimeUtil;
using namespace std::chrono_literals;

class FakeClock final : public Clock {
 public:
  time_point now() const override { return now_; }
  void advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  time_point now_ = std::chrono::system_clock::from_time_t(1'800'000'000);
};

class FakeRuntime final : public runtime::Runtime {
 public:
  std::string name() const override { return "fake"; }
  std::string version() const override { return "1"; }
  Result<std::vector<runtime::PodInfo>> list_pods() override { return pods; }
  Result<runtime::PodInfo> get_pod(const std::string& ns, const std::string& name) override {
    for (const auto& p : pods)
      if (p.namespace_name == ns && p.name == name) return p;
    return Error::not_found("no pod");
  }
  std::vector<runtime::PodInfo> pods;
};

// Records what the manager asks of the kernel layer, and journals a link the
// way the real backend does, so reconcile has something to undo.
class RecordingBackend final : public NetworkBackend {
 public:
  Result<Details> apply(const std::string& id, const NetworkFault&,
                        const runtime::PodInfo& pod) override {
    if (fail_next) {
      fail_next = false;
      return Error::from_errno(EBUSY, "injected failure");
    }
    jr::Record rec;
    rec.mutable_link_owned()->set_key(pod.netns_path + "/eth0");
    rec.mutable_link_owned()->set_ifname("eth0");
    if (sink) NQ_TRY(sink(rec));
    active.insert(id);
    link_of[id] = rec.link_owned().key();
    return Details{{"netns", pod.netns_path}};
  }
  Status revert(const std::string& id) override {
    if (fail_revert) return Error::from_errno(EIO, "injected revert failure");
    reverted.push_back(id);
    active.erase(id);
    jr::Record rec;
    rec.mutable_link_released()->set_key(link_of[id]);
    return sink ? sink(rec) : ok();
  }
  Status reconcile(const jr::LinkOwned& link) override {
    reconciled.push_back(link.key());
    return ok();
  }
  void release_idle() override { ++idle_sweeps; }
  void release_all() override { released_all = true; }
  int idle_sweeps = 0;
  bool released_all = false;
  RecordSink sink;
  bool fail_next = false;
  bool fail_revert = false;
  std::set<std::string> active;
  std::map<std::string, std::string> link_of;
  std::vector<std::string> reverted;
  std::vector<std::string> reconciled;
};

// A workload backend double for the stress kinds: journals one resource per
// injection the way the real backends do, and reports live figures.
class RecordingWorkload final : public WorkloadBackend {
 public:
  std::vector<FaultKind> kinds() const override {
    return {FaultKind::kCpuStress, FaultKind::kMemoryStress};
  }
  Result<Details> apply(const std::string& id, const WorkloadFault& fault, const runtime::PodInfo&,
                        const std::vector<runtime::ContainerInfo>& containers) override {
    jr::Record rec;
    auto* res = rec.mutable_resource_owned();
    res->set_key(id + "/stressor");
    res->set_injection_id(id);
    res->set_kind(std::string(kind_name(fault.kind)));
    res->mutable_process()->set_pid(4242);
    if (sink) NQ_TRY(sink(rec));
    active.insert(id);
    container_names.clear();
    for (const auto& c : containers) container_names.push_back(c.name);
    return Details{{"workers", "1"}};
  }
  Status revert(const std::string& id) override {
    reverted.push_back(id);
    active.erase(id);
    jr::Record rec;
    rec.mutable_resource_released()->set_key(id + "/stressor");
    return sink ? sink(rec) : ok();
  }
  Details observe(const std::string& id) const override {
    return {{"achieved", active.count(id) ? "79.5" : "0"}};
  }
  Status reconcile(const jr::ResourceOwned& resource) override {
    reconciled.push_back(resource.key());
    return ok();
  }
  void release_all() override { released_all = true; }
  RecordSink sink;
  std::set<std::string> active;
  std::vector<std::string> container_names;
  std::vector<std::string> reverted;
  std::vector<std::string> reconciled;
  bool released_all = false;
};

runtime::PodInfo pod(const std::string& name, bool opted_in = true) {
  runtime::PodInfo p;
  p.namespace_name = "llm-marketplace";
  p.name = name;
  p.uid = "uid-" + name;
  if (opted_in) p.labels["chaos-ready"] = "true";
  p.labels["app"] = name;
  p.netns_path = "/run/netns/" + name;
  p.containers.push_back({"app", "c-" + name, 100, {}});
  p.containers.push_back({"sidecar", "s-" + name, 101, {}});
  return p;
}

v1::ApplyRequest cpu_request(const std::string& id, const std::string& pod_name) {
  v1::ApplyRequest req;
  req.set_id(id);
  req.mutable_target()->mutable_pod()->set_namespace_("llm-marketplace");
  req.mutable_target()->mutable_pod()->set_name(pod_name);
  req.mutable_spec()->mutable_cpu_stress()->set_load(80);
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(60);
  return req;
}

v1::ApplyRequest partition_request(const std::string& id, const std::string& pod_name,
                                   std::chrono::seconds ttl = 60s) {
  v1::ApplyRequest req;
  req.set_id(id);
  req.mutable_target()->mutable_pod()->set_namespace_("llm-marketplace");
  req.mutable_target()->mutable_pod()->set_name(pod_name);
  auto* path = req.mutable_spec()->mutable_partition()->mutable_path();
  path->set_direction(v1::DIRECTION_TO);
  path->mutable_scope()->add_remote_cidrs("10.213.0.3/32");
  *req.mutable_ttl() = TimeUtil::SecondsToDuration(ttl.count());
  return req;
}

std::vector<Capability> all_caps() {
  std::vector<Capability> caps;
  for (const char* n : {"bpf_prog_sched_cls", "sch_htb", "sch_tbf", "ifb", "bpf_tcx"})
    caps.push_back({n, true, "test"});
  caps.push_back({"sch_netem", false, "kernel lacks sch_netem"});
  return caps;
}

class ManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("nq-manager-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    runtime_.pods = {pod("graphql-gateway-0"), pod("postgres-0"), pod("unlabeled", false)};
    start();
  }
  void TearDown() override {
    manager_.reset();
    journal_.reset();
    std::filesystem::remove_all(dir_);
  }
  void start() {
    manager_.reset();
    journal_.reset();
    auto j = Journal::open(dir_);
    ASSERT_TRUE(j.ok()) << j.error().message();
    journal_ = std::make_unique<Journal>(std::move(*j));
    ManagerOptions opts;
    opts.node_name = "node-1";
    manager_ = std::make_unique<InjectionManager>(opts, runtime_, *journal_, backend_, caps_,
                                                  nullptr, clock_);
    backend_.sink = [m = manager_.get()](const jr::Record& r) { return m->append_record(r); };
    if (with_workload_) {
      workload_.sink = backend_.sink;
      manager_->add_backend(workload_);
    }
    ASSERT_TRUE(manager_->recover().ok());
  }
  std::filesystem::path dir_;
  FakeClock clock_;
  FakeRuntime runtime_;
  RecordingBackend backend_;
  RecordingWorkload workload_;
  bool with_workload_ = true;
  Capabilities caps_{all_caps()};
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<InjectionManager> manager_;
};

TEST_F(ManagerTest, ApplyIsIdempotentOnId) {
  auto first = manager_->apply(partition_request("p1", "postgres-0"));
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_TRUE(first->created());
  EXPECT_EQ(first->injection().kind(), "partition");
  EXPECT_EQ(first->injection().pod_uid(), "uid-postgres-0");
  auto again = manager_->apply(partition_request("p1", "postgres-0"));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created());
  EXPECT_EQ(backend_.active.size(), 1u);

  auto different = partition_request("p1", "postgres-0");
  different.mutable_spec()->mutable_partition()->mutable_path()->set_direction(v1::DIRECTION_BOTH);
  auto conflict = manager_->apply(different);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().status_code(), Code::kAlreadyExists);
  EXPECT_NE(conflict.error().message().find("different spec"), std::string::npos);
}

TEST_F(ManagerTest, BadInputNamesTheFieldAndTouchesNothing) {
  struct Case {
    std::function<void(v1::ApplyRequest&)> mutate;
    Code code;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.set_id(""); }, Code::kInvalidArgument, "id: required"},
      {[](auto& r) { r.clear_ttl(); }, Code::kInvalidArgument, "ttl: required"},
      {[](auto& r) { *r.mutable_ttl() = TimeUtil::SecondsToDuration(7 * 24 * 3600); },
       Code::kInvalidArgument, "exceeds"},
      {[](auto& r) {
         r.mutable_spec()->mutable_partition()->mutable_path()->mutable_scope()->set_remote_cidrs(
             0, "10.0.0.0/40");
       },
       Code::kInvalidArgument, "spec.partition.path.scope.remote_cidrs[0]"},
      {[](auto& r) { r.mutable_spec()->Clear(); }, Code::kInvalidArgument, "no fault kind"},
      {[](auto& r) { r.mutable_target()->mutable_pod()->set_name("nope"); }, Code::kNotFound,
       "pod llm-marketplace/nope not found"},
      {[](auto& r) { r.mutable_target()->mutable_pod()->set_name("unlabeled"); },
       Code::kFailedPrecondition, "chaos-ready"},
      {[](auto& r) { r.mutable_target()->mutable_pod()->set_uid("other"); }, Code::kNotFound,
       "recreated"},
      {[](auto& r) {
         auto* n = r.mutable_spec()->mutable_netem();
         *n->mutable_delay() = TimeUtil::MillisecondsToDuration(100);
       },
       Code::kFailedPrecondition, "sch_netem"},
      {[](auto& r) {
         auto* n = r.mutable_spec()->mutable_netem();
         n->set_loss(150);
       },
       Code::kInvalidArgument, "spec.netem.loss"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto req = partition_request("bad-" + std::to_string(i), "postgres-0");
    cases[i].mutate(req);
    auto r = manager_->apply(req);
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_EQ(r.error().status_code(), cases[i].code)
        << "case " << i << ": " << r.error().message();
    EXPECT_NE(r.error().message().find(cases[i].needle), std::string::npos)
        << "case " << i << ": " << r.error().message();
  }
  EXPECT_TRUE(backend_.active.empty());
  EXPECT_EQ(manager_->active_count(), 0u);
}

TEST_F(ManagerTest, FailedApplyIsJournaledAsEnded) {
  backend_.fail_next = true;
  auto r = manager_->apply(partition_request("p1", "postgres-0"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("injected failure"), std::string::npos);
  EXPECT_EQ(manager_->active_count(), 0u);
  start();  // a restart finds nothing to reconcile
  EXPECT_TRUE(backend_.reconciled.empty());
}

TEST_F(ManagerTest, RevertIsIdempotentAndIdsAreNotReused) {
  ASSERT_TRUE(manager_->apply(partition_request("p1", "postgres-0")).ok());
  auto r1 = manager_->revert("p1");
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->state(), v1::INJECTION_STATE_REVERTED);
  EXPECT_EQ(r1->revert_reason(), "revert");
  auto r2 = manager_->revert("p1");
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(backend_.reverted.size(), 1u);
  auto reuse = manager_->apply(partition_request("p1", "postgres-0"));
  ASSERT_FALSE(reuse.ok());
  EXPECT_EQ(reuse.error().status_code(), Code::kFailedPrecondition);
  auto unknown = manager_->revert("never");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().status_code(), Code::kNotFound);
}

TEST_F(ManagerTest, TtlExpiryReverts) {
  ASSERT_TRUE(manager_->apply(partition_request("short", "postgres-0", 10s)).ok());
  ASSERT_TRUE(manager_->apply(partition_request("long", "graphql-gateway-0", 60s)).ok());
  clock_.advance(9s);
  manager_->expire_due();
  EXPECT_EQ(manager_->active_count(), 2u);
  clock_.advance(2s);
  const auto next = manager_->expire_due();
  EXPECT_EQ(backend_.reverted, std::vector<std::string>{"short"});
  EXPECT_GT(backend_.idle_sweeps, 0) << "expiry also sweeps idle programs";
  EXPECT_EQ(manager_->revert("short")->revert_reason(), "ttl");
  EXPECT_EQ(next, clock_.now() + 49s);
}

TEST_F(ManagerTest, LeaseMustBeRenewed) {
  auto req = partition_request("leased", "postgres-0", 600s);
  req.mutable_lease()->set_holder("controller/exp-1");
  *req.mutable_lease()->mutable_duration() = TimeUtil::SecondsToDuration(15);
  ASSERT_TRUE(manager_->apply(req).ok());
  for (int i = 0; i < 4; ++i) {
    clock_.advance(10s);
    EXPECT_EQ(manager_->renew_lease("controller/exp-1", 0s).value(), 1u);
    manager_->expire_due();
  }
  EXPECT_EQ(manager_->active_count(), 1u);
  EXPECT_EQ(manager_->renew_lease("controller/other", 0s).value(), 0u);
  clock_.advance(16s);  // the controller died: no renewal
  manager_->expire_due();
  EXPECT_EQ(manager_->active_count(), 0u);
  EXPECT_EQ(manager_->revert("leased")->revert_reason(), "lease");
}

TEST_F(ManagerTest, KillSwitchRevertsBlocksAndSurvivesRestart) {
  ASSERT_TRUE(manager_->apply(partition_request("a", "postgres-0")).ok());
  ASSERT_TRUE(manager_->apply(partition_request("b", "graphql-gateway-0")).ok());
  auto all = manager_->revert_all("sre@example", "incident 42");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->reverted_size(), 2);
  EXPECT_TRUE(all->killswitch().engaged());
  EXPECT_TRUE(backend_.active.empty());
  EXPECT_TRUE(backend_.released_all) << "the kill switch leaves no idle program behind";

  auto refused = manager_->apply(partition_request("c", "postgres-0"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("kill switch engaged by sre@example"),
            std::string::npos);

  start();  // the agent restarts: still engaged
  EXPECT_TRUE(manager_->killswitch().engaged());
  EXPECT_FALSE(manager_->apply(partition_request("d", "postgres-0")).ok());
  ASSERT_TRUE(manager_->release("sre@example").ok());
  EXPECT_TRUE(manager_->apply(partition_request("e", "postgres-0")).ok());
}

TEST_F(ManagerTest, RestartReconcilesWhatWasLeft) {
  ASSERT_TRUE(manager_->apply(partition_request("a", "postgres-0")).ok());
  ASSERT_TRUE(manager_->apply(partition_request("b", "graphql-gateway-0")).ok());
  // Simulate a crash: drop the manager without reverting, restart.
  start();
  EXPECT_EQ(backend_.reconciled.size(), 2u);
  EXPECT_EQ(manager_->active_count(), 0u);
  EXPECT_EQ(manager_->revert("a")->revert_reason(), "reconcile");
  // Reconciled once: a second restart has nothing left.
  backend_.reconciled.clear();
  start();
  EXPECT_TRUE(backend_.reconciled.empty());
}

TEST_F(ManagerTest, WorkloadKindsGoToTheirBackend) {
  auto applied = manager_->apply(cpu_request("s1", "postgres-0"));
  ASSERT_TRUE(applied.ok()) << applied.error().message();
  EXPECT_EQ(applied->injection().kind(), "cpu_stress");
  EXPECT_EQ(workload_.active.count("s1"), 1u);
  EXPECT_TRUE(backend_.active.empty());
  // No containers named: every container of the pod.
  EXPECT_EQ(workload_.container_names, (std::vector<std::string>{"app", "sidecar"}));
  // List carries the backend's live figures.
  const auto listed = manager_->list();
  ASSERT_EQ(listed.injections_size(), 1);
  EXPECT_EQ(listed.injections(0).details().at("achieved"), "79.5");
  EXPECT_EQ(listed.injections(0).details().at("workers"), "1");

  auto one = cpu_request("s2", "graphql-gateway-0");
  one.mutable_target()->add_containers("sidecar");
  ASSERT_TRUE(manager_->apply(one).ok());
  EXPECT_EQ(workload_.container_names, (std::vector<std::string>{"sidecar"}));

  ASSERT_TRUE(manager_->revert("s1").ok());
  EXPECT_EQ(workload_.reverted, (std::vector<std::string>{"s1"}));
  EXPECT_TRUE(backend_.reverted.empty());

  manager_->revert_everything_for_shutdown();
  EXPECT_TRUE(workload_.released_all);
}

TEST_F(ManagerTest, WorkloadResourcesAreReconciledAfterACrash) {
  ASSERT_TRUE(manager_->apply(cpu_request("s1", "postgres-0")).ok());
  ASSERT_TRUE(manager_->apply(cpu_request("s2", "graphql-gateway-0")).ok());
  ASSERT_TRUE(manager_->revert("s2").ok());
  start();  // crash and restart: only s1's stressor was left
  EXPECT_EQ(workload_.reconciled, (std::vector<std::string>{"s1/stressor"}));
  EXPECT_EQ(manager_->revert("s1")->revert_reason(), "reconcile");
  workload_.reconciled.clear();
  start();
  EXPECT_TRUE(workload_.reconciled.empty());
}

TEST_F(ManagerTest, WorkloadKindWithoutBackendIsRefused) {
  with_workload_ = false;
  start();
  auto r = manager_->apply(cpu_request("s1", "postgres-0"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kFailedPrecondition);
  EXPECT_NE(r.error().message().find("cpu_stress faults are not enabled"), std::string::npos)
      << r.error().message();
}

TEST_F(ManagerTest, ShutdownRevertsAndReleasesEverything) {
  ASSERT_TRUE(manager_->apply(partition_request("a", "postgres-0")).ok());
  manager_->revert_everything_for_shutdown();
  EXPECT_TRUE(backend_.active.empty());
  EXPECT_TRUE(backend_.released_all);
  EXPECT_EQ(manager_->revert("a")->revert_reason(), "shutdown");
}

TEST_F(ManagerTest, FailedRevertKeepsTheInjection) {
  ASSERT_TRUE(manager_->apply(partition_request("a", "postgres-0")).ok());
  backend_.fail_revert = true;
  auto r = manager_->revert("a");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(manager_->active_count(), 1u);
  backend_.fail_revert = false;
  EXPECT_TRUE(manager_->revert("a").ok());
}

TEST_F(ManagerTest, ListTargetsMarksIneligible) {
  v1::ListTargetsRequest req;
  req.mutable_selector()->add_namespaces("llm-marketplace");
  auto eligible = manager_->list_targets(req);
  ASSERT_TRUE(eligible.ok());
  EXPECT_EQ(eligible->pods_size(), 2);
  req.set_include_ineligible(true);
  auto all = manager_->list_targets(req);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->pods_size(), 3);
  bool saw_refusal = false;
  for (const auto& p : all->pods())
    if (!p.eligible()) saw_refusal = p.ineligible_reason().find("chaos-ready") != std::string::npos;
  EXPECT_TRUE(saw_refusal);
}

}  // namespace
}  // namespace nq::core
