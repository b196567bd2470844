// The real nodequake-agent binary over its Unix socket, with sandbox pods:
// every fault measured with real traffic between the pods, expiry (TTL and
// lease), the kill switch across a restart, SIGTERM, refusals, metrics. After
// every test the pods' kernel state must be exactly what it was before.
#include <gmock/gmock.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <sstream>
#include <thread>

#include "common/netns.h"
#include "common/traffic.h"
#include "tests/node/core/agent_harness.h"
#include "tests/support/topology.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

constexpr traffic::Ports kOtherPorts{1007, 1009, 1019, 18080};
// Well above 1 Mbit/s on a veth + bridge path, and far below what it carries.
constexpr double kUnshapedBps = 20e6;

std::string detail(const v1::Injection& injection, const std::string& key) {
  auto it = injection.details().find(key);
  return it == injection.details().end() ? "<none>" : it->second;
}

class AgentTest : public ::testing::Test {
 protected:
  static constexpr const char* kClient = "client";
  static constexpr const char* kServer = "server";
  static constexpr const char* kOther = "other";
  static constexpr const char* kUnlabeled = "unlabeled";
  static constexpr const char* kHostNet = "hostnet";
  static constexpr const char* kProtected = "guarded";
  static constexpr const char* kProtectedNs = "kube-system";

  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    sandbox::PodSpec unlabeled = env_.pod(kUnlabeled);
    unlabeled.labels.erase("chaos-ready");
    sandbox::PodSpec protected_pod = env_.pod(kProtected);
    protected_pod.namespace_name = kProtectedNs;
    auto up = env_.up({env_.pod(kClient), env_.pod(kServer), env_.pod(kOther), unlabeled,
                       env_.pod(kHostNet, {"/bin/sleep", "1000" + env_.suffix().substr(1)}, true),
                       protected_pod});
    ASSERT_TRUE(up.ok()) << up.error().message();
    for (const char* name : {kClient, kServer, kOther}) {
      auto netns = env_.netns(name);
      ASSERT_TRUE(netns.ok()) << netns.error().message();
      netns_.emplace(name, std::move(*netns));
      auto ip = env_.ip(name);
      ASSERT_TRUE(ip.ok()) << ip.error().message();
      ips_[name] = *ip;
    }
    baseline_ = capture();
    ASSERT_FALSE(baseline_.empty());
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
    started_ = true;
  }

  void TearDown() override {
    if (!started_) return;
    if (agent_.running()) {
      auto status = agent_.stop(SIGTERM);
      ASSERT_TRUE(status.ok()) << status.error().message();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
          << "wait status " << *status << "\n"
          << agent_.log_tail();
    }
    EXPECT_EQ(diff(baseline_, capture()), "") << "kernel state left behind";
    if (HasFailure()) std::cerr << "agent log:\n" << agent_.log_tail(20000);
  }

  // Every pod with a netns of its own, by name.
  PodStates capture() {
    auto s = capture_pods(env_, {kClient, kServer, kOther, kUnlabeled});
    EXPECT_TRUE(s.ok()) << s.error().message();
    if (!s.ok()) return {};
    auto guarded = env_.netns(kProtected, kProtectedNs);
    EXPECT_TRUE(guarded.ok());
    if (guarded.ok()) {
      auto g = capture_kernel_state(*guarded);
      EXPECT_TRUE(g.ok());
      if (g.ok()) (*s)[std::string(kProtectedNs) + "/" + kProtected] = *g;
    }
    return *s;
  }

  v1::ApplyRequest request(const std::string& id, const std::string& pod, const v1::FaultSpec& spec,
                           std::chrono::milliseconds ttl = 5min) {
    return apply_request(id, env_.ns(), pod, spec, ttl);
  }
  grpc::Status apply(const v1::ApplyRequest& req, v1::ApplyResponse* resp = nullptr) {
    v1::ApplyResponse local;
    return rpc(agent_.stub(), &v1::Agent::Stub::Apply, req, resp ? resp : &local);
  }
  // Applies and asserts success (call with ASSERT_NO_FATAL_FAILURE).
  void must_apply(const v1::ApplyRequest& req) {
    v1::ApplyResponse resp;
    grpc::Status st = apply(req, &resp);
    ASSERT_TRUE(st.ok()) << req.id() << ": " << st.error_message();
    EXPECT_TRUE(resp.created());
    EXPECT_EQ(resp.injection().state(), v1::INJECTION_STATE_ACTIVE);
  }
  Result<v1::Injection> revert(const std::string& id) {
    v1::RevertRequest req;
    req.set_id(id);
    v1::RevertResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Revert, req, &resp);
    if (!st.ok()) return Error::status(Code(st.error_code()), st.error_message());
    return resp.injection();
  }
  v1::ListResponse list() {
    v1::ListResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }
  std::vector<std::string> active_ids() {
    std::vector<std::string> ids;
    const v1::ListResponse resp = list();  // a range-for over a temporary's member dangles
    for (const auto& i : resp.injections()) ids.push_back(i.id());
    return ids;
  }
  v1::ProbeResponse probe() {
    v1::ProbeResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::Probe, v1::ProbeRequest{}, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }
  bool has_capability(const std::string& name) {
    const v1::ProbeResponse resp = probe();
    for (const auto& c : resp.capabilities())
      if (c.name() == name) return c.available();
    return false;
  }
  Status restart(const std::vector<std::string>& extra = {}) {
    auto status = agent_.stop(SIGTERM);
    if (!status.ok()) return std::move(status).error();
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
      return Error::internal("agent exited with wait status " + std::to_string(*status));
    return agent_.start(extra);
  }

  // TCP handshake from pod `from` to pod `to`. "Works" gets a generous
  // timeout; "blocked" a short one (a dropped SYN never completes anyway).
  bool connects(const std::string& from, const std::string& to, uint16_t port,
                std::chrono::milliseconds timeout) {
    const std::string ip = ips_.at(to);
    return run_in_netns(netns_.at(from), [&] { return traffic::tcp_connect(ip, port, timeout); })
        .ok();
  }
  bool works(const std::string& from, const std::string& to, uint16_t port = 7) {
    return connects(from, to, port, 3s);
  }
  bool blocked(const std::string& from, const std::string& to, uint16_t port = 7) {
    return !connects(from, to, port, 500ms);
  }
  // Upload from `from` to `to`'s sink for 2 s, in bits per second.
  double upload_bps(const std::string& from, const std::string& to, uint16_t port = 9) {
    const std::string ip = ips_.at(to);
    auto t = run_in_netns(netns_.at(from), [&] { return traffic::tcp_upload(ip, port, 2s); });
    EXPECT_TRUE(t.ok()) << t.error().message();
    return t.ok() ? t->bits_per_second() : 0;
  }

  SandboxEnv env_;  // first: torn down last, after the agent
  AgentHarness agent_{env_};
  bool started_ = false;
  std::map<std::string, Netns> netns_;
  std::map<std::string, std::string> ips_;
  PodStates baseline_;
};

// ------------------------------------------------------------ partition

TEST_F(AgentTest, PartitionToBlocksOnlyConnectionsThePodOpensAndReverts) {
  ASSERT_TRUE(works(kClient, kServer));
  ASSERT_TRUE(works(kServer, kClient));

  v1::ApplyResponse resp;
  grpc::Status st = apply(
      request("p-to", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}})), &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(resp.created());
  EXPECT_EQ(resp.injection().kind(), "partition");
  EXPECT_EQ(detail(resp.injection(), "interface"), "eth0");

  EXPECT_TRUE(blocked(kClient, kServer)) << "client -> server must be cut";
  EXPECT_TRUE(works(kServer, kClient)) << "server -> client must still work";
  EXPECT_TRUE(works(kClient, kOther)) << "another peer is outside the scope";
  EXPECT_EQ(active_ids(), std::vector<std::string>{"p-to"});

  auto reverted = revert("p-to");
  ASSERT_TRUE(reverted.ok()) << reverted.error().message();
  EXPECT_EQ(reverted->state(), v1::INJECTION_STATE_REVERTED);
  EXPECT_EQ(reverted->revert_reason(), "revert");
  EXPECT_TRUE(works(kClient, kServer));
  EXPECT_TRUE(works(kServer, kClient));
  EXPECT_EQ(diff(baseline_, capture()), "");
}

TEST_F(AgentTest, PartitionFromIsTheMirrorImage) {
  ASSERT_NO_FATAL_FAILURE(must_apply(
      request("p-from", kClient, partition(v1::DIRECTION_FROM, {{ips_[kServer] + "/32"}, {}}))));
  EXPECT_TRUE(blocked(kServer, kClient)) << "server -> client must be cut";
  EXPECT_TRUE(works(kClient, kServer)) << "client -> server must still work";
  EXPECT_TRUE(works(kOther, kClient)) << "another peer is outside the scope";

  ASSERT_TRUE(revert("p-from").ok());
  EXPECT_TRUE(works(kServer, kClient));
  EXPECT_TRUE(works(kClient, kServer));
  EXPECT_EQ(diff(baseline_, capture()), "");
}

// ------------------------------------------------------------ bandwidth

TEST_F(AgentTest, EgressBandwidthWithinTenPercent) {
  ASSERT_GT(upload_bps(kClient, kServer), kUnshapedBps);
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("bw", kClient, bandwidth(1'000'000, v1::DIRECTION_TO))));
  EXPECT_NEAR(upload_bps(kClient, kServer), 1e6, 1e5);
  // Egress of the client only: what the server sends is not shaped.
  EXPECT_GT(upload_bps(kServer, kClient), kUnshapedBps);
  ASSERT_TRUE(revert("bw").ok());
  EXPECT_GT(upload_bps(kClient, kServer), kUnshapedBps);
  EXPECT_EQ(diff(baseline_, capture()), "");
}

TEST_F(AgentTest, PortScopedBandwidthLeavesOtherPortsAlone) {
  // A second sink on the server pod, on a port the fault does not name.
  auto extra = ServerThread::start(netns_.at(kServer), kOtherPorts);
  ASSERT_TRUE(extra.ok()) << extra.error().message();
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("bw-port", kClient, bandwidth(1'000'000, v1::DIRECTION_TO, {{}, {9}}))));
  EXPECT_NEAR(upload_bps(kClient, kServer, 9), 1e6, 1e5) << "the shaped port";
  EXPECT_GT(upload_bps(kClient, kServer, kOtherPorts.sink), kUnshapedBps) << "another port";
  ASSERT_TRUE(revert("bw-port").ok());
}

TEST_F(AgentTest, CidrScopedBandwidthLeavesTheServerAlone) {
  ASSERT_NO_FATAL_FAILURE(must_apply(request(
      "bw-cidr", kClient, bandwidth(1'000'000, v1::DIRECTION_TO, {{ips_[kOther] + "/32"}, {}}))));
  EXPECT_GT(upload_bps(kClient, kServer), kUnshapedBps) << "the server is outside the scope";
  EXPECT_NEAR(upload_bps(kClient, kOther), 1e6, 1e5) << "the scoped peer";
  ASSERT_TRUE(revert("bw-cidr").ok());
}

TEST_F(AgentTest, PreExistingRootQdiscSurvivesInjectAndRevertExactly) {
  ASSERT_TRUE(install_cni_root(netns_.at(kClient)).ok());
  const PodStates with_cni = capture();
  ASSERT_NE(diff(baseline_, with_cni), "") << "the CNI tree was not installed";
  baseline_ = with_cni;  // what TearDown must find again

  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("bw-both", kClient, bandwidth(2'000'000, v1::DIRECTION_BOTH))));
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("bw-port", kClient, bandwidth(1'000'000, v1::DIRECTION_TO, {{}, {19}}))));
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("p", kClient, partition(v1::DIRECTION_TO, {{ips_[kOther] + "/32"}, {}}))));
  const PodStates during = capture();
  EXPECT_NE(diff(with_cni.at(kClient), during.at(kClient)), "");
  EXPECT_NEAR(upload_bps(kClient, kServer), 2e6, 2e5) << "our tree shapes meanwhile";

  for (const char* id : {"bw-port", "p", "bw-both"}) {
    auto r = revert(id);
    ASSERT_TRUE(r.ok()) << id << ": " << r.error().message();
  }
  EXPECT_EQ(diff(with_cni, capture()), "") << "the CNI tree must come back exactly";
  EXPECT_TRUE(works(kClient, kOther));
}

TEST_F(AgentTest, PreExistingRootQdiscIsRestoredAfterKillNineWhenHandlesCollide) {
  // The CNI tree uses handles 1: and 10:, and nodequake's first egress leaf
  // is qdisc 1: (under class 4e51:1): the restore after a crash must not
  // trip over its own leaf when it puts the CNI's root 1: back.
  ASSERT_TRUE(install_cni_root(netns_.at(kClient)).ok());
  const PodStates with_cni = capture();
  baseline_ = with_cni;
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("bw", kClient, bandwidth(2'000'000, v1::DIRECTION_BOTH))));
  const PodStates during = capture();
  EXPECT_NE(diff(with_cni, during), "");

  auto killed = agent_.stop(SIGKILL);
  ASSERT_TRUE(killed.ok()) << killed.error().message();
  // TCX links die with the agent; its qdiscs and the ifb are still there.
  EXPECT_EQ(diff(during.at(kClient).tc, capture().at(kClient).tc), "");
  ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
  EXPECT_TRUE(list().injections().empty());
  EXPECT_EQ(diff(with_cni, capture()), "") << "reconcile must restore the CNI tree exactly";
}

// ------------------------------------------------------------ expiry

TEST_F(AgentTest, TtlExpiryReverts) {
  const auto t0 = Clock::now();
  ASSERT_NO_FATAL_FAILURE(must_apply(
      request("ttl", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}}), 2s)));
  EXPECT_TRUE(blocked(kClient, kServer));
  // Gone within about a second of the deadline.
  while (!connects(kClient, kServer, 7, 300ms) && Clock::now() - t0 < 5s) {
  }
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 1500ms) << "reverted before its TTL";
  EXPECT_LE(took, 3500ms) << "not reverted within ~3 s";
  EXPECT_TRUE(works(kClient, kServer));
  EXPECT_TRUE(list().injections().empty());
  auto again = revert("ttl");
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->state(), v1::INJECTION_STATE_REVERTED);
  EXPECT_EQ(again->revert_reason(), "ttl");
  EXPECT_EQ(diff(baseline_, capture()), "");
}

TEST_F(AgentTest, LeaseExpiryRevertsUnlessRenewed) {
  auto leased = [&](const std::string& id, const std::string& peer, const std::string& holder) {
    v1::ApplyRequest req =
        request(id, kClient, partition(v1::DIRECTION_TO, {{ips_[peer] + "/32"}, {}}), 60s);
    req.mutable_lease()->set_holder(holder);
    *req.mutable_lease()->mutable_duration() = TimeUtil::SecondsToDuration(1);
    return req;
  };
  ASSERT_NO_FATAL_FAILURE(must_apply(leased("orphan", kOther, "ctl/gone")));
  EXPECT_TRUE(blocked(kClient, kOther));
  ASSERT_NO_FATAL_FAILURE(must_apply(leased("kept", kServer, "ctl/alive")));

  // Renew "ctl/alive" every 250 ms for 3 s; "ctl/gone" never renews.
  const auto until = Clock::now() + 3s;
  while (Clock::now() < until) {
    v1::RenewLeaseRequest req;
    req.set_holder("ctl/alive");
    v1::RenewLeaseResponse resp;
    grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::RenewLease, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.renewed(), 1u);
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(active_ids(), std::vector<std::string>{"kept"});
  EXPECT_TRUE(works(kClient, kOther)) << "the unrenewed lease must have expired";
  EXPECT_TRUE(blocked(kClient, kServer)) << "the renewed one must still hold";
  auto orphan = revert("orphan");
  ASSERT_TRUE(orphan.ok());
  EXPECT_EQ(orphan->revert_reason(), "lease");

  // Stop renewing: it goes too.
  const auto t0 = Clock::now();
  while (!active_ids().empty() && Clock::now() - t0 < 5s) std::this_thread::sleep_for(100ms);
  EXPECT_LE(Clock::now() - t0, 2500ms);
  EXPECT_TRUE(works(kClient, kServer));
  auto kept = revert("kept");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->revert_reason(), "lease");
  EXPECT_EQ(diff(baseline_, capture()), "");
}

// ------------------------------------------------------------ kill switch

TEST_F(AgentTest, RevertAllRevertsEverythingAndBlocksUntilReleaseAcrossRestarts) {
  ASSERT_NO_FATAL_FAILURE(must_apply(
      request("a", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}}))));
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("b", kClient, bandwidth(1'000'000, v1::DIRECTION_BOTH))));
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("c", kServer, bandwidth(5'000'000, v1::DIRECTION_TO))));
  EXPECT_NE(diff(baseline_, capture()), "");

  v1::RevertAllRequest all;
  all.set_actor("sre-test");
  all.set_reason("drill");
  v1::RevertAllResponse all_resp;
  grpc::Status st = rpc(agent_.stub(), &v1::Agent::Stub::RevertAll, all, &all_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(all_resp.reverted_size(), 3);
  EXPECT_EQ(all_resp.failures_size(), 0);
  for (const auto& i : all_resp.reverted()) EXPECT_EQ(i.revert_reason(), "revert-all");
  EXPECT_TRUE(all_resp.killswitch().engaged());
  EXPECT_TRUE(list().injections().empty());
  EXPECT_EQ(diff(baseline_, capture()), "");
  EXPECT_TRUE(works(kClient, kServer));

  auto refused_apply = [&](const std::string& id) {
    grpc::Status s = apply(request(id, kClient, partition(v1::DIRECTION_TO)));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("kill switch"));
    EXPECT_THAT(s.error_message(), HasSubstr("drill"));
  };
  refused_apply("d");
  EXPECT_EQ(diff(baseline_, capture()), "");

  // The kill switch is journaled: a restarted agent still refuses.
  ASSERT_TRUE(restart().ok()) << agent_.log_tail();
  const v1::ProbeResponse p = probe();
  EXPECT_TRUE(p.killswitch().engaged());
  EXPECT_EQ(p.killswitch().reason(), "drill");
  EXPECT_TRUE(list().killswitch().engaged());
  refused_apply("e");
  EXPECT_EQ(diff(baseline_, capture()), "");

  v1::ReleaseRequest rel;
  rel.set_actor("sre-test");
  v1::ReleaseResponse rel_resp;
  st = rpc(agent_.stub(), &v1::Agent::Stub::Release, rel, &rel_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(rel_resp.killswitch().engaged());
  ASSERT_NO_FATAL_FAILURE(must_apply(
      request("f", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}}))));
  EXPECT_TRUE(blocked(kClient, kServer));
  // Released is journaled too.
  ASSERT_TRUE(revert("f").ok());
  ASSERT_TRUE(restart().ok()) << agent_.log_tail();
  EXPECT_FALSE(probe().killswitch().engaged());
}

// ------------------------------------------------------------ shutdown

TEST_F(AgentTest, SigtermRevertsEverythingBeforeExiting) {
  std::vector<std::vector<std::string>> modes = {{"--attach", "clsact"}};
  if (has_capability("bpf_tcx")) modes.push_back({"--attach", "tcx"});
  for (const auto& mode : modes) {
    SCOPED_TRACE(mode[1]);
    ASSERT_TRUE(restart(mode).ok()) << agent_.log_tail();
    v1::ApplyResponse resp;
    ASSERT_TRUE(apply(request("p-" + mode[1], kClient,
                              partition(v1::DIRECTION_BOTH, {{ips_[kServer] + "/32"}, {}})),
                      &resp)
                    .ok());
    EXPECT_EQ(detail(resp.injection(), "attach"), mode[1] == "clsact" ? "tc-clsact" : "tcx");
    ASSERT_NO_FATAL_FAILURE(
        must_apply(request("b-" + mode[1], kServer, bandwidth(3'000'000, v1::DIRECTION_BOTH))));
    ASSERT_NO_FATAL_FAILURE(must_apply(
        request("i-" + mode[1], kOther, bandwidth(2'000'000, v1::DIRECTION_FROM, {{}, {19}}))));
    ASSERT_NO_FATAL_FAILURE(
        must_apply(request("q-" + mode[1], kOther, partition(v1::DIRECTION_FROM, {{}, {8080}}))));
    EXPECT_TRUE(blocked(kClient, kServer));
    EXPECT_NE(diff(baseline_, capture()), "");

    auto status = agent_.stop(SIGTERM);
    ASSERT_TRUE(status.ok()) << status.error().message();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
    EXPECT_EQ(diff(baseline_, capture()), "") << "the agent exited without reverting";
    EXPECT_TRUE(works(kClient, kServer));
    ASSERT_TRUE(agent_.start().ok()) << agent_.log_tail();
    EXPECT_TRUE(list().injections().empty());
  }
}

// ------------------------------------------------------------ refusals

TEST_F(AgentTest, RefusalsNameTheReasonAndTouchNothing) {
  struct Case {
    std::string what;
    v1::ApplyRequest req;
    grpc::StatusCode code;
    std::string message;
  };
  const v1::FaultSpec cut = partition(v1::DIRECTION_TO);
  std::vector<Case> cases;
  {
    v1::ApplyRequest r = request("r1", kUnlabeled, cut);
    cases.push_back({"unlabeled pod", r, grpc::StatusCode::FAILED_PRECONDITION,
                     "lacks the opt-in label chaos-ready"});
  }
  cases.push_back({"protected namespace", apply_request("r2", kProtectedNs, kProtected, cut),
                   grpc::StatusCode::FAILED_PRECONDITION, "protected namespace kube-system"});
  cases.push_back({"hostNetwork pod", request("r3", kHostNet, cut),
                   grpc::StatusCode::FAILED_PRECONDITION, "hostNetwork"});
  cases.push_back({"unknown pod", request("r4", "no-such-pod", cut), grpc::StatusCode::NOT_FOUND,
                   "no-such-pod"});
  cases.push_back(
      {"bad CIDR", request("r5", kClient, partition(v1::DIRECTION_TO, {{"10.0.0.300/8"}, {}})),
       grpc::StatusCode::INVALID_ARGUMENT, "spec.partition.path.scope.remote_cidrs[0]"});
  {
    v1::FaultSpec loss;
    loss.mutable_netem()->set_loss(150);
    cases.push_back({"loss > 100", request("r6", kClient, loss), grpc::StatusCode::INVALID_ARGUMENT,
                     "spec.netem.loss"});
  }
  {
    v1::FaultSpec slow;
    slow.mutable_netem()->mutable_delay()->set_seconds(1'000'000);
    cases.push_back({"absurd latency", request("r7", kClient, slow),
                     grpc::StatusCode::INVALID_ARGUMENT, "spec.netem.delay"});
  }
  const bool netem = has_capability("sch_netem");
  if (!netem) {
    // engine auto would take the eBPF delay line (nq_node_agent_delay);
    // engine netem insists on the qdisc.
    v1::FaultSpec forced = netem_delay(50ms, {});
    forced.mutable_netem()->set_engine(v1::NETEM_ENGINE_NETEM);
    cases.push_back({"netem without sch_netem", request("r8", kClient, forced),
                     grpc::StatusCode::FAILED_PRECONDITION, "sch_netem"});
  }

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    grpc::Status st = apply(c.req);
    EXPECT_EQ(st.error_code(), c.code) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr(c.message));
    EXPECT_TRUE(list().injections().empty());
    EXPECT_EQ(diff(baseline_, capture()), "") << "a refused Apply touched the kernel";
  }

  // The same id with a different spec is refused; the same request again is not.
  const v1::ApplyRequest first =
      request("dup", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}}));
  ASSERT_NO_FATAL_FAILURE(must_apply(first));
  const PodStates applied = capture();
  grpc::Status st =
      apply(request("dup", kClient, partition(v1::DIRECTION_TO, {{ips_[kOther] + "/32"}, {}})));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("different spec"));
  EXPECT_EQ(diff(applied, capture()), "");
  EXPECT_TRUE(works(kClient, kOther));
  v1::ApplyResponse repeat;
  ASSERT_TRUE(apply(first, &repeat).ok());
  EXPECT_FALSE(repeat.created());
  EXPECT_EQ(diff(applied, capture()), "");
  ASSERT_TRUE(revert("dup").ok());
  EXPECT_EQ(diff(baseline_, capture()), "");

  if (netem) {
    // A kernel with sch_netem (the vm tier) applies it instead.
    ASSERT_NO_FATAL_FAILURE(must_apply(request("r8", kClient, netem_delay(50ms, {}))));
    ASSERT_TRUE(revert("r8").ok());
  }
}

// ------------------------------------------------------------ metrics

TEST_F(AgentTest, MetricsEndpointReportsInjectionsCapabilitiesAndJournal) {
  auto port = free_local_port();
  ASSERT_TRUE(port.ok()) << port.error().message();
  agent_.set_metrics_address("127.0.0.1:" + std::to_string(*port));
  ASSERT_TRUE(restart().ok()) << agent_.log_tail();
  auto scrape = [&] {
    auto body = http_get_body(*port, "/metrics");
    EXPECT_TRUE(body.ok()) << body.error().message();
    return body.ok() ? *body : std::string();
  };
  auto value = [](const std::string& text, const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) {
    auto v = prometheus_sample(text, name, labels);
    EXPECT_TRUE(v.ok()) << v.error().message();
    return v.ok() ? *v : -1.0;
  };

  std::string text = scrape();
  EXPECT_EQ(value(text, "nodequake_agent_journal_entries"), 0.0);
  // Capabilities, exactly as Probe reports them.
  const v1::ProbeResponse p = probe();
  ASSERT_GT(p.capabilities_size(), 5);
  for (const auto& c : p.capabilities())
    EXPECT_EQ(value(text, "nodequake_agent_capability", {{"name", c.name()}}),
              c.available() ? 1.0 : 0.0)
        << c.name();
  EXPECT_EQ(value(text, "nodequake_agent_killswitch_engaged"), 0.0);

  ASSERT_NO_FATAL_FAILURE(must_apply(
      request("m-p", kClient, partition(v1::DIRECTION_TO, {{ips_[kServer] + "/32"}, {}}))));
  ASSERT_NO_FATAL_FAILURE(
      must_apply(request("m-b", kServer, bandwidth(1'000'000, v1::DIRECTION_TO))));
  text = scrape();
  EXPECT_EQ(value(text, "nodequake_agent_injections_active", {{"kind", "partition"}}), 1.0);
  EXPECT_EQ(value(text, "nodequake_agent_injections_active", {{"kind", "bandwidth"}}), 1.0);
  EXPECT_EQ(value(text, "nodequake_agent_injections_active", {{"kind", "netem"}}), 0.0);
  EXPECT_EQ(value(text, "nodequake_agent_apply_duration_seconds_count", {{"kind", "partition"}}),
            1.0);
  const double sum =
      value(text, "nodequake_agent_apply_duration_seconds_sum", {{"kind", "partition"}});
  EXPECT_GT(sum, 0.0);
  EXPECT_LT(sum, 10.0);
  EXPECT_EQ(value(text, "nodequake_agent_apply_duration_seconds_bucket",
                  {{"kind", "bandwidth"}, {"le", "+Inf"}}),
            1.0);
  // Two injections, plus the links whose kernel objects outlive the agent
  // (the bandwidth fault's qdiscs; a TCX-attached partition has none).
  const double entries = value(text, "nodequake_agent_journal_entries");
  EXPECT_GE(entries, 3.0);
  EXPECT_LE(entries, 4.0);
  EXPECT_GT(value(text, "nodequake_agent_journal_bytes"), 0.0);

  ASSERT_TRUE(revert("m-p").ok());
  ASSERT_TRUE(revert("m-b").ok());
  text = scrape();
  EXPECT_EQ(value(text, "nodequake_agent_injections_active", {{"kind", "partition"}}), 0.0);
  EXPECT_EQ(value(text, "nodequake_agent_injections_active", {{"kind", "bandwidth"}}), 0.0);
  EXPECT_EQ(value(text, "nodequake_agent_journal_entries"), 0.0);
}

}  // namespace
}  // namespace nq::testing
