// The network backend on real namespaces: partition, bandwidth (egress,
// ingress, both) and their scoping, measured with real traffic; rollback of a
// failed apply; exact restore of a pre-existing root qdisc; reconcile of what
// a dead backend left.
#include "agent/net/network_faults.h"

#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "agent/core/spec.h"
#include "agent/journal/journal.h"
#include "agent/net/links.h"
#include "agent/net/qdisc.h"
#include "agent/net/tc_dump.h"
#include "nodequake/v1/agent.pb.h"
#include "tests/support/kernel_state.h"
#include "tests/support/topology.h"

namespace nq::testing {
namespace {

namespace v1 = nodequake::v1;
namespace jr = nodequake::v1::journal;
using namespace std::chrono_literals;
using net::NetfaultLoadOptions;

constexpr traffic::Ports kOtherPorts{1007, 1009, 1019, 18080};

core::NetworkFault validated(const v1::FaultSpec& spec) {
  v1::ApplyRequest req;
  req.set_id("x");
  req.mutable_target()->mutable_pod()->set_namespace_("ns");
  req.mutable_target()->mutable_pod()->set_name("a");
  *req.mutable_spec() = spec;
  req.mutable_ttl()->set_seconds(60);
  auto v = core::validate_apply(req, {});
  EXPECT_TRUE(v.ok()) << v.error().message();
  if (!v.ok() || !std::holds_alternative<core::NetworkFault>(v->fault)) return {};
  return std::get<core::NetworkFault>(v->fault);
}

v1::FaultSpec bandwidth(uint64_t bps, v1::Direction dir, std::vector<uint32_t> remote_ports = {}) {
  v1::FaultSpec spec;
  auto* b = spec.mutable_bandwidth();
  b->set_rate_bps(bps);
  b->mutable_path()->set_direction(dir);
  for (uint32_t p : remote_ports) {
    auto* r = b->mutable_path()->mutable_scope()->add_remote_ports();
    r->set_first(p);
    r->set_last(p);
  }
  return spec;
}

v1::FaultSpec partition(v1::Direction dir, std::vector<std::string> cidrs) {
  v1::FaultSpec spec;
  auto* path = spec.mutable_partition()->mutable_path();
  path->set_direction(dir);
  for (const auto& c : cidrs) path->mutable_scope()->add_remote_cidrs(c);
  return spec;
}

class NetworkFaultsTest : public ::testing::TestWithParam<NetfaultLoadOptions::Attach> {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto pair = NetnsPair::create();
    ASSERT_TRUE(pair.ok()) << pair.error().message();
    pair_ = std::move(*pair);
    auto server = ServerThread::start(pair_->b());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(*server);
    auto other = ServerThread::start(pair_->b(), kOtherPorts);
    ASSERT_TRUE(other.ok()) << other.error().message();
    other_ = std::move(*other);
    pod_.namespace_name = "ns";
    pod_.name = "a";
    pod_.netns_path = pair_->path_a();
    baseline_ = capture();
    faults_ = make_backend();
  }
  void TearDown() override {
    if (!pair_) return;
    for (const auto& id : applied_) (void)faults_->revert(id);
    faults_.reset();
    EXPECT_EQ(diff(baseline_, capture()), "") << "the test left kernel state behind";
  }

  std::unique_ptr<net::NetworkFaults> make_backend(
      std::chrono::milliseconds idle = std::chrono::milliseconds(0)) {
    net::NetworkFaultsOptions opts;
    opts.bpf.attach = GetParam();
    opts.spare_programs = 1;
    opts.idle_detach = idle;
    return std::make_unique<net::NetworkFaults>(
        [this](const jr::Record& r) -> Status {
          records_.push_back(r);
          return ok();
        },
        opts);
  }
  NetnsKernelState capture() {
    auto s = capture_kernel_state(pair_->a());
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? *s : NetnsKernelState{};
  }
  Result<core::Details> apply(const std::string& id, const v1::FaultSpec& spec) {
    auto r = faults_->apply(id, validated(spec), pod_);
    if (r.ok()) applied_.push_back(id);
    return r;
  }
  Status revert(const std::string& id) {
    applied_.erase(std::remove(applied_.begin(), applied_.end(), id), applied_.end());
    return faults_->revert(id);
  }
  template <class F>
  auto in_a(F&& f) {
    return run_in_netns(pair_->a(), std::forward<F>(f));
  }
  template <class F>
  auto in_b(F&& f) {
    return run_in_netns(pair_->b(), std::forward<F>(f));
  }
  double upload_bps(uint16_t port) {
    auto t = in_a([&] { return traffic::tcp_upload(NetnsPair::kIpB, port, 2s); });
    EXPECT_TRUE(t.ok()) << t.error().message();
    return t.ok() ? t->bits_per_second() : 0;
  }
  double download_bps(uint16_t port) {
    // Ingress shaping is a real bottleneck queue that TCP must probe by
    // loss; a longer window keeps its start-up out of the figure.
    auto t = in_a([&] { return traffic::tcp_download(NetnsPair::kIpB, port, 4s); });
    EXPECT_TRUE(t.ok()) << t.error().message();
    return t.ok() ? t->bits_per_second() : 0;
  }
  // Egress shaping is the sender's own qdisc: TCP never overruns it, and the
  // goodput is the rate minus headers (0.96). Ingress shaping (the ifb) is a
  // bottleneck queue the sender must probe by loss, which costs a single TCP
  // flow a few percent more on a busy machine (0.89-0.96 measured). Never more
  // than the rate, though.
  static void expect_ingress_rate(double measured, double rate) {
    EXPECT_GE(measured, 0.85 * rate) << "data arriving at the pod";
    EXPECT_LE(measured, 1.05 * rate) << "data arriving at the pod";
  }
  bool a_connects_to_b(uint16_t port = 7) {
    return in_a([&] { return traffic::tcp_connect(NetnsPair::kIpB, port, 300ms); }).ok();
  }

  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<ServerThread> server_, other_;
  runtime::PodInfo pod_;
  NetnsKernelState baseline_;
  std::unique_ptr<net::NetworkFaults> faults_;
  std::vector<jr::Record> records_;
  std::vector<std::string> applied_;
};

TEST_P(NetworkFaultsTest, PartitionBlocksOneDirectionAndReverts) {
  ASSERT_TRUE(a_connects_to_b());
  auto r = apply("p", partition(v1::DIRECTION_TO, {"10.77.0.2/32"}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_FALSE(a_connects_to_b());
  // The peer can still open connections to the pod.
  auto srv = ServerThread::start(pair_->a(), kOtherPorts);
  ASSERT_TRUE(srv.ok());
  EXPECT_TRUE(in_b([] { return traffic::tcp_connect(NetnsPair::kIpA, 1007, 1s); }).ok());
  ASSERT_TRUE(revert("p").ok());
  EXPECT_TRUE(a_connects_to_b());
  EXPECT_EQ(diff(baseline_, capture()), "");
}

TEST_P(NetworkFaultsTest, PartitionScopedByCidrLeavesOtherTrafficAlone) {
  auto r = apply("p", partition(v1::DIRECTION_BOTH, {"10.77.0.99/32", "192.168.0.0/16"}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(a_connects_to_b());
}

TEST_P(NetworkFaultsTest, EgressBandwidthWithinTenPercentAndPortScoped) {
  auto r = apply("bw", bandwidth(1'000'000, v1::DIRECTION_TO, {9}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->at("attach"), GetParam() == NetfaultLoadOptions::Attach::kTcx ? "tcx" : "tc-clsact");
  const double limited = upload_bps(9);
  EXPECT_NEAR(limited, 1e6, 1e5) << "upload to the shaped port";
  // Another port of the same peer is not shaped.
  EXPECT_GT(upload_bps(kOtherPorts.sink), 50e6);
  ASSERT_TRUE(revert("bw").ok());
  EXPECT_GT(upload_bps(9), 50e6);
}

TEST_P(NetworkFaultsTest, IngressBandwidthGoesThroughIfb) {
  auto r = apply("bw-in", bandwidth(1'000'000, v1::DIRECTION_FROM));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_NE(r->at("ingress_class").find("nqifb-eth0"), std::string::npos);
  expect_ingress_rate(download_bps(19), 1e6);
  EXPECT_GT(upload_bps(9), 50e6) << "egress is not shaped";
}

TEST_P(NetworkFaultsTest, BothDirectionsAndStackedFaults) {
  ASSERT_TRUE(apply("bw", bandwidth(2'000'000, v1::DIRECTION_BOTH, {9, 19})).ok());
  ASSERT_TRUE(apply("p", partition(v1::DIRECTION_TO, {"10.77.0.2/32"})).ok());
  EXPECT_FALSE(a_connects_to_b(9));
  ASSERT_TRUE(revert("p").ok());
  EXPECT_NEAR(upload_bps(9), 2e6, 2e5);
  expect_ingress_rate(download_bps(19), 2e6);
}

TEST_P(NetworkFaultsTest, PreExistingRootQdiscSurvivesExactly) {
  // A CNI-style root (tbf at 500 Mbit/s) before any fault.
  ASSERT_TRUE(in_a([]() -> Status {
                NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
                NQ_ASSIGN_OR_RETURN(int ifindex, net::link_index(sock, "eth0"));
                NQ_ASSIGN_OR_RETURN(net::MsgPtr msg, net::build_htb_root(ifindex, 0x00010000));
                return net::transact(sock, msg.get(), "cni root");
              }).ok());
  const NetnsKernelState with_cni = capture();
  ASSERT_NE(diff(baseline_, with_cni), "");
  ASSERT_TRUE(apply("bw", bandwidth(1'000'000, v1::DIRECTION_TO)).ok());
  EXPECT_NE(diff(with_cni, capture()), "");
  ASSERT_TRUE(revert("bw").ok());
  EXPECT_EQ(diff(with_cni, capture()), "");
  // Put the machine's default back for TearDown's comparison.
  ASSERT_TRUE(in_a([]() -> Status {
                NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
                NQ_ASSIGN_OR_RETURN(int ifindex, net::link_index(sock, "eth0"));
                NQ_ASSIGN_OR_RETURN(net::MsgPtr msg, net::build_delete_root(ifindex, 0x00010000));
                return net::transact(sock, msg.get(), "delete cni root");
              }).ok());
}

TEST_P(NetworkFaultsTest, BandwidthDefaultsFitJumboFrames) {
  // AWS VPC CNI pods run at MTU 9001: a bucket planned for 1500 bytes would
  // drop every full-size frame, so the defaults follow the device.
  auto set_mtu = [&](uint32_t mtu) {
    for (const Netns* ns : {&pair_->a(), &pair_->b()}) {
      auto st = run_in_netns(*ns, [&]() -> Status {
        NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
        return net::set_link_mtu(sock, "eth0", mtu);
      });
      ASSERT_TRUE(st.ok()) << st.error().message();
    }
  };
  set_mtu(9001);
  auto r = apply("bw", bandwidth(10'000'000, v1::DIRECTION_TO, {9}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_NEAR(upload_bps(9), 10e6, 1e6);
  ASSERT_TRUE(revert("bw").ok());
  set_mtu(1500);
}

TEST_P(NetworkFaultsTest, IdleProgramStaysUntilReleased) {
  faults_ = make_backend(std::chrono::milliseconds(200));
  ASSERT_TRUE(apply("p", partition(v1::DIRECTION_TO, {"10.77.0.2/32"})).ok());
  ASSERT_TRUE(revert("p").ok());
  // The fault is gone at once; the inert program stays for the next one.
  EXPECT_TRUE(a_connects_to_b());
  NetnsKernelState idle = capture();
  if (GetParam() == NetfaultLoadOptions::Attach::kTcx) {
    EXPECT_EQ(diff(baseline_.tc, idle.tc), "");  // the program hangs on TCX links only
  } else {
    // Only our clsact filters (and the clsact qdisc carrying them) remain.
    std::istringstream lines(diff(baseline_.tc, idle.tc));
    for (std::string line; std::getline(lines, line);)
      EXPECT_TRUE(line.find("pref 20049") != std::string::npos ||
                  line.find("qdisc clsact") != std::string::npos)
          << line;
  }
  EXPECT_EQ(faults_->link_count(), 1u);
  ASSERT_TRUE(apply("p2", partition(v1::DIRECTION_TO, {"10.77.0.2/32"})).ok());
  EXPECT_FALSE(a_connects_to_b());
  ASSERT_TRUE(revert("p2").ok());
  faults_->release_idle();  // not idle long enough yet
  EXPECT_EQ(faults_->link_count(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  faults_->release_idle();
  EXPECT_EQ(faults_->link_count(), 0u);
  EXPECT_EQ(diff(baseline_, capture()), "");
}

TEST_P(NetworkFaultsTest, FailedApplyLeavesNothing) {
  // A device with the name of our ifb already exists (someone else's): the
  // fault fails after the egress root was replaced and its leaf installed,
  // and the rollback must restore all of it and leave the foreign device be.
  ASSERT_TRUE(in_a([]() -> Status {
                NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
                return net::create_ifb(sock, "nqifb-eth0");
              }).ok());
  const NetnsKernelState with_foreign = capture();
  auto r = faults_->apply("bad", validated(bandwidth(1'000'000, v1::DIRECTION_BOTH)), pod_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("nqifb-eth0"), std::string::npos) << r.error().message();
  EXPECT_EQ(diff(with_foreign, capture()), "");
  EXPECT_EQ(faults_->link_count(), 0u);
  ASSERT_TRUE(in_a([]() -> Status {
                NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
                return net::delete_link(sock, "nqifb-eth0");
              }).ok());

  // And an interface the pod does not have.
  v1::FaultSpec other = partition(v1::DIRECTION_TO, {});
  other.mutable_partition()->mutable_path()->set_interface("eth9");
  auto missing = faults_->apply("bad2", validated(other), pod_);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().status_code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find("eth9"), std::string::npos);
}

TEST_P(NetworkFaultsTest, ReconcileUndoesWhatADeadBackendLeft) {
  ASSERT_TRUE(apply("bw", bandwidth(1'000'000, v1::DIRECTION_BOTH)).ok());
  ASSERT_TRUE(apply("p", partition(v1::DIRECTION_TO, {"10.77.0.2/32"})).ok());
  // "Crash": the backend object goes away without reverting. TCX links die
  // with it; qdiscs, the ifb and legacy filters stay.
  faults_ = make_backend();
  applied_.clear();
  const NetnsKernelState left = capture();
  EXPECT_NE(diff(baseline_, left), "");
  JournalState journal = reduce(records_);
  ASSERT_EQ(journal.links.size(), 1u);
  for (const auto& [key, link] : journal.links) {
    auto st = faults_->reconcile(link);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  EXPECT_EQ(diff(baseline_, capture()), "");
  EXPECT_TRUE(a_connects_to_b());
}

INSTANTIATE_TEST_SUITE_P(Attach, NetworkFaultsTest,
                         ::testing::Values(NetfaultLoadOptions::Attach::kTcx,
                                           NetfaultLoadOptions::Attach::kLegacyTc),
                         [](const auto& param_info) {
                           return param_info.param == NetfaultLoadOptions::Attach::kTcx
                                      ? "tcx"
                                      : "legacy_tc";
                         });

}  // namespace
}  // namespace nq::testing
