// Lowering the model to what the agents receive: PodSelector, FaultSpecs,
// target scoping.
#include "controller/experiment/lower.h"

#include <google/protobuf/util/message_differencer.h>

#include "tests/unit/controller/test_util.h"

namespace nq::experiment {
namespace {

namespace v1 = nodequake::v1;
using testing::experiment_at;
using testing::load_ok;

v1::Pod pod_with_ips(const std::string& name, std::vector<std::string> ips) {
  v1::Pod pod;
  pod.mutable_ref()->set_namespace_("llm-marketplace");
  pod.mutable_ref()->set_name(name);
  for (auto& ip : ips) pod.add_ips(ip);
  return pod;
}

TEST(Lower, NetworkLatency) {
  auto docs = load_ok("network-latency.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  EXPECT_EQ(l.name, "chaos-testing/network-latency");
  EXPECT_EQ(l.kind, Kind::kNetworkChaos);
  ASSERT_EQ(l.selector.namespaces_size(), 1);
  EXPECT_EQ(l.selector.namespaces(0), "llm-marketplace");
  EXPECT_EQ(l.selector.match_labels().at("app"), "graphql-gateway");
  EXPECT_EQ(l.selector.match_labels().at("chaos-ready"), "true");
  EXPECT_EQ(l.mode.mode, selection::Mode::kOne);
  ASSERT_TRUE(l.target);
  EXPECT_EQ(l.target->selector.match_labels().at("app"), "postgres");
  EXPECT_EQ(l.target->mode.mode, selection::Mode::kAll);
  EXPECT_EQ(l.duration, std::chrono::minutes(5));
  ASSERT_EQ(l.faults.size(), 1u);
  ASSERT_TRUE(l.faults[0].has_netem());
  const v1::NetemFault& n = l.faults[0].netem();
  EXPECT_EQ(n.delay().seconds(), 0);
  EXPECT_EQ(n.delay().nanos(), 500000000);
  EXPECT_EQ(n.jitter().nanos(), 100000000);
  EXPECT_DOUBLE_EQ(n.delay_correlation(), 25);
  EXPECT_EQ(n.path().direction(), v1::DIRECTION_TO);
  EXPECT_EQ(n.path().scope().remote_cidrs_size(), 0);  // bound to the peers later
  EXPECT_FALSE(n.delay_each_direction());
  EXPECT_EQ(n.loss(), 0);
}

TEST(Lower, ScopeToPeersAddsEachPeerAddress) {
  auto docs = load_ok("network-latency.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  auto scoped = scope_to_peers(l.faults, {pod_with_ips("postgres-0", {"10.213.0.5"}),
                                          pod_with_ips("postgres-1", {"10.213.0.6", "fd00::6"})});
  ASSERT_TRUE(scoped.ok()) << scoped.error().message();
  const auto& scope = scoped->at(0).netem().path().scope();
  ASSERT_EQ(scope.remote_cidrs_size(), 3);
  EXPECT_EQ(scope.remote_cidrs(0), "10.213.0.5/32");
  EXPECT_EQ(scope.remote_cidrs(1), "10.213.0.6/32");
  EXPECT_EQ(scope.remote_cidrs(2), "fd00::6/128");
  // The input is left alone (it is reused for every run).
  EXPECT_EQ(l.faults[0].netem().path().scope().remote_cidrs_size(), 0);
}

TEST(Lower, ScopeToPeersRefusesToWidenToEveryPeer) {
  auto docs = load_ok("network-latency.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  auto scoped = scope_to_peers(l.faults, {pod_with_ips("postgres-0", {})});
  ASSERT_FALSE(scoped.ok());
  EXPECT_EQ(scoped.error().status_code(), Code::kFailedPrecondition);
  EXPECT_FALSE(scope_to_peers(l.faults, {}).ok());
  EXPECT_FALSE(scope_to_peers(l.faults, {pod_with_ips("p", {"not-an-ip"})}).ok());
}

TEST(Lower, PartitionKeepsExternalTargetsAndAddsPeers) {
  auto docs = load_ok("network-partition.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  ASSERT_EQ(l.faults.size(), 1u);
  ASSERT_TRUE(l.faults[0].has_partition());
  EXPECT_EQ(l.faults[0].partition().path().direction(), v1::DIRECTION_BOTH);
  ASSERT_EQ(l.target->selector.match_expressions_size(), 1);
  const auto& req = l.target->selector.match_expressions(0);
  EXPECT_EQ(req.key(), "tier");
  EXPECT_EQ(req.operator_(), "In");
  EXPECT_EQ(req.values_size(), 2);
  auto scoped = scope_to_peers(l.faults, {pod_with_ips("api-0", {"10.213.0.9"})});
  ASSERT_TRUE(scoped.ok());
  const auto& scope = scoped->at(0).partition().path().scope();
  ASSERT_EQ(scope.remote_cidrs_size(), 2);
  EXPECT_EQ(scope.remote_cidrs(0), "10.96.0.0/12");
  EXPECT_EQ(scope.remote_cidrs(1), "10.213.0.9/32");
}

TEST(Lower, NetemEveryKnob) {
  auto docs = load_ok("network-degraded.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  EXPECT_EQ(l.name, "network-degraded");
  EXPECT_FALSE(l.target);
  EXPECT_EQ(l.abort_when.size(), 2u);
  const v1::NetemFault& n = l.faults.at(0).netem();
  EXPECT_EQ(n.path().direction(), v1::DIRECTION_BOTH);
  EXPECT_EQ(n.path().interface(), "eth0");
  ASSERT_EQ(n.path().scope().remote_cidrs_size(), 2);
  EXPECT_EQ(n.path().scope().remote_cidrs(0), "192.168.10.7/32");
  EXPECT_TRUE(n.delay_each_direction());  // Chaos Mesh delays both directions fully
  EXPECT_EQ(n.delay().nanos(), 100000000);
  EXPECT_EQ(n.jitter().nanos(), 10000000);
  EXPECT_EQ(n.distribution(), v1::DELAY_DISTRIBUTION_NORMAL);
  EXPECT_DOUBLE_EQ(n.delay_correlation(), 50);
  EXPECT_DOUBLE_EQ(n.reorder(), 10);
  EXPECT_DOUBLE_EQ(n.reorder_correlation(), 20);
  EXPECT_EQ(n.gap(), 5u);
  EXPECT_DOUBLE_EQ(n.loss(), 2.5);
  EXPECT_DOUBLE_EQ(n.loss_correlation(), 25);
  EXPECT_DOUBLE_EQ(n.duplicate(), 1);
  EXPECT_DOUBLE_EQ(n.corrupt(), 0.5);
  EXPECT_DOUBLE_EQ(n.corrupt_correlation(), 10);
}

TEST(Lower, Bandwidth) {
  auto docs = load_ok("network-bandwidth.yaml");
  const Lowered l = lower(experiment_at(docs, 0));
  ASSERT_TRUE(l.faults.at(0).has_bandwidth());
  const v1::BandwidthFault& b = l.faults[0].bandwidth();
  EXPECT_EQ(b.rate_bps(), 8000000u);
  EXPECT_EQ(b.limit_bytes(), 20971520u);
  EXPECT_EQ(b.buffer_bytes(), 10000u);
  EXPECT_EQ(b.path().direction(), v1::DIRECTION_TO);
}

TEST(Lower, Stress) {
  auto docs = load_ok("stress-chaos.yaml");
  const Lowered cpu = lower(experiment_at(docs, 0));
  ASSERT_EQ(cpu.faults.size(), 1u);
  EXPECT_DOUBLE_EQ(cpu.faults[0].cpu_stress().load(), 80);
  EXPECT_EQ(cpu.faults[0].cpu_stress().workers(), 2u);
  EXPECT_TRUE(cpu.containers.empty());
  const Lowered mem = lower(experiment_at(docs, 1));
  ASSERT_EQ(mem.faults.size(), 1u);
  // Chaos Mesh's size is per worker: 2 x 256Mi in total.
  EXPECT_EQ(mem.faults[0].memory_stress().bytes(), 512ull << 20);
  EXPECT_EQ(mem.containers, std::vector<std::string>{"inference"});
}

TEST(Lower, StressWithCpuAndMemoryIsTwoFaults) {
  auto docs = load_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: StressChaos
metadata: {name: both}
spec:
  mode: all
  duration: 1m
  selector: {namespaces: [a]}
  stressors:
    cpu: {load: 50}
    memory: {size: "25%"}
)",
                               "b.yaml");
  ASSERT_TRUE(docs.ok()) << docs.error().message();
  const Lowered l = lower(std::get<Experiment>(docs->at(0)));
  ASSERT_EQ(l.faults.size(), 2u);
  EXPECT_TRUE(l.faults[0].has_cpu_stress());
  EXPECT_DOUBLE_EQ(l.faults[1].memory_stress().percent(), 25);
  EXPECT_EQ(l.faults[1].memory_stress().bytes(), 0u);
}

TEST(Lower, Io) {
  auto docs = load_ok("io-chaos.yaml");
  const Lowered fault = lower(experiment_at(docs, 0));
  const v1::IoErrnoFault& e = fault.faults.at(0).io_errno();
  EXPECT_EQ(e.path(), "/var/lib/postgresql/data/pg_wal");
  EXPECT_EQ(e.error(), "EIO");
  EXPECT_DOUBLE_EQ(e.percent(), 50);
  ASSERT_EQ(e.operations_size(), 2);
  EXPECT_EQ(e.operations(0), v1::IO_OPERATION_WRITE);
  EXPECT_EQ(e.operations(1), v1::IO_OPERATION_OPEN);
  EXPECT_EQ(fault.containers, std::vector<std::string>{"postgres"});
  const Lowered throttle = lower(experiment_at(docs, 1));
  const v1::IoThrottleFault& t = throttle.faults.at(0).io_throttle();
  EXPECT_EQ(t.path(), "/var/lib/postgresql/data");
  EXPECT_EQ(t.read_bytes_per_second(), 1u << 20);
  EXPECT_EQ(t.write_bytes_per_second(), 512u << 10);
  EXPECT_EQ(t.write_iops(), 100u);
  EXPECT_EQ(t.read_iops(), 0u);
  const Lowered fill = lower(experiment_at(docs, 2));
  const v1::DiskFillFault& f = fill.faults.at(0).disk_fill();
  EXPECT_EQ(f.path(), "/var/lib/postgresql/data");
  EXPECT_DOUBLE_EQ(f.percent(), 90);
  EXPECT_EQ(f.bytes(), 0u);
}

TEST(Lower, Pod) {
  auto docs = load_ok("pod-chaos.yaml");
  const Lowered kill = lower(experiment_at(docs, 0));
  EXPECT_TRUE(kill.faults.at(0).has_pod_kill());
  EXPECT_FALSE(kill.duration);
  const Lowered ckill = lower(experiment_at(docs, 1));
  EXPECT_TRUE(ckill.faults.at(0).has_container_kill());
  EXPECT_EQ(ckill.containers, std::vector<std::string>{"graphql-gateway"});
  const Lowered fail = lower(experiment_at(docs, 2));
  EXPECT_TRUE(fail.faults.at(0).has_pod_failure());
  EXPECT_EQ(fail.mode, (selection::ModeSpec{selection::Mode::kRandomMaxPercent, 50}));
  // Non-network faults pass through scope_to_peers untouched.
  auto same = scope_to_peers(fail.faults, {pod_with_ips("x", {"10.0.0.1"})});
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(same->at(0), fail.faults[0]));
}

}  // namespace
}  // namespace nq::experiment
