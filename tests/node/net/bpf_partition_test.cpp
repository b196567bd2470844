// Partitions by the netfault program on a real veth pair: a = 10.77.0.1 is
// the "pod" carrying the program, b = 10.77.0.2 its peer.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/node/net/bpf_env.h"

namespace nq::testing {
namespace {

using net::kBoth;
using net::kEgress;
using net::kIngress;
using net::NetfaultProgram;
using net::RuleSlots;

constexpr const char* kA = NetnsPair::kIpA;
constexpr const char* kB = NetnsPair::kIpB;

class NetfaultPartition : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto env = BpfEnv::create();
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
    Status st = env_->attach();
    ASSERT_TRUE(st.ok()) << st.error().message();
  }

  void apply(const RuleSlots& slots) {
    auto st = env_->apply(slots);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }

  // The handshake completes.
  void expect_open(const Netns& from, const char* ip, uint16_t port) {
    auto r = connect_from(from, ip, port);
    EXPECT_TRUE(r.ok()) << "to " << ip << ":" << port << ": " << r.error().message();
  }
  // The handshake times out: the SYN or the SYN-ACK was dropped.
  void expect_blocked(const Netns& from, const char* ip, uint16_t port) {
    auto r = connect_from(from, ip, port, kBlockedTimeout);
    ASSERT_FALSE(r.ok()) << "to " << ip << ":" << port << " connected";
    EXPECT_EQ(r.error().status_code(), Code::kDeadlineExceeded) << r.error().message();
  }

  std::unique_ptr<BpfEnv> env_;
};

TEST_F(NetfaultPartition, AttachesWithTcxLinksOnThisKernel) {
  if (auto why = tcx_missing()) GTEST_SKIP() << *why;
  EXPECT_EQ(env_->prog().mode(), NetfaultProgram::AttachMode::kTcx);
  EXPECT_EQ(env_->prog().ifindex(), env_->eth0());
  EXPECT_TRUE(env_->prog().legacy().empty());
  // A second attach is refused, not stacked.
  Status again = env_->attach();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().status_code(), Code::kFailedPrecondition);
  // No rules: traffic flows both ways.
  expect_open(env_->a(), kB, 7);
  expect_open(env_->b(), kA, 7);
}

TEST_F(NetfaultPartition, ToBlocksThePodButLetsPeersConnect) {
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.77.0.2/32"});
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
  // The peer opens a connection to the pod and talks over it.
  expect_open(env_->b(), kA, 7);
  auto rtt = run_in_netns(env_->b(), [] { return traffic::tcp_echo_rtt(kA, 7, 5, 2s); });
  ASSERT_TRUE(rtt.ok()) << rtt.error().message();
  EXPECT_EQ(rtt->size(), 5u);

  auto st = env_->prog().stats(0);
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_GT(st->dropped, 0u);
  EXPECT_GT(st->recorded, 0u);  // the peer's SYNs admitted their flows
}

TEST_F(NetfaultPartition, FromIsTheMirrorImage) {
  RuleSlots slots;
  slots[0] = partition(kIngress, {"10.77.0.2/32"});
  apply(slots);
  expect_blocked(env_->b(), kA, 7);
  expect_open(env_->a(), kB, 7);
  auto rtt = run_in_netns(env_->a(), [] { return traffic::tcp_echo_rtt(kB, 7, 5, 2s); });
  ASSERT_TRUE(rtt.ok()) << rtt.error().message();
}

TEST_F(NetfaultPartition, BothBlocksEitherWay) {
  RuleSlots slots;
  slots[5] = partition(kBoth, {"10.77.0.0/24"});
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
  expect_blocked(env_->b(), kA, 7);
  EXPECT_EQ(*udp_echoes_from(env_->b(), kA, 5), 0);
}

TEST_F(NetfaultPartition, RemotePortScopeLeavesOtherPortsAlone) {
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.77.0.2/32"}, net::Proto::kTcp, {{7, 7}});
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
  expect_open(env_->a(), kB, 9);
  expect_open(env_->a(), kB, 8080);
  expect_open(env_->b(), kA, 7);
}

TEST_F(NetfaultPartition, NestedPrefixesOfDifferentRulesBothApply) {
  // 10.0.0.0/8 blocks port 9, the nested /32 port 7: the /32 entry must
  // carry the /8 rule too, or port 9 would slip through.
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.0.0.0/8"}, net::Proto::kTcp, {{9, 9}});
  slots[1] = partition(kEgress, {"10.77.0.2/32"}, net::Proto::kTcp, {{7, 7}});
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
  expect_blocked(env_->a(), kB, 9);
  expect_open(env_->a(), kB, 8080);
}

TEST_F(NetfaultPartition, NonMatchingCidrsLeaveTrafficUntouched) {
  RuleSlots slots;
  slots[0] = partition(kBoth, {"10.99.0.0/16", "fd00::/8"});
  net::NetRule wrong_local = partition(kBoth, {"10.77.0.2/32"});
  wrong_local.scope.local = {*parse_cidr("10.77.0.9/32")};  // not a's address
  slots[1] = wrong_local;
  apply(slots);
  expect_open(env_->a(), kB, 7);
  expect_open(env_->b(), kA, 7);
  // The same rule with a's own address does apply.
  slots[1]->scope.local = {*parse_cidr("10.77.0.1/32")};
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
}

TEST_F(NetfaultPartition, UdpThroughAToPartition) {
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.77.0.2/32"});
  apply(slots);
  auto from_a = udp_echoes_from(env_->a(), kB, 10);
  ASSERT_TRUE(from_a.ok()) << from_a.error().message();
  EXPECT_EQ(*from_a, 0);
  // The peer's datagrams record the flow, so the pod's answers get out.
  auto from_b = udp_echoes_from(env_->b(), kA, 10);
  ASSERT_TRUE(from_b.ok()) << from_b.error().message();
  EXPECT_EQ(*from_b, 10);
}

TEST_F(NetfaultPartition, ConnectionsOpenBeforeThePartitionAreCut) {
  // A connection a -> b echo, opened before the rule.
  auto fd = run_in_netns(env_->a(), []() -> Result<UniqueFd> {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return Error::from_errno(errno, "socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(7);
    ::inet_pton(AF_INET, kB, &sa.sin_addr);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
      return Error::from_errno(errno, "connect");
    return s;
  });
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  const auto echo = [&](int timeout_ms) {
    char buf[4] = {'p', 'i', 'n', 'g'};
    if (::send(fd->get(), buf, sizeof(buf), MSG_NOSIGNAL) != sizeof(buf)) return false;
    pollfd p{fd->get(), POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    return ::recv(fd->get(), buf, sizeof(buf), 0) == sizeof(buf);
  };
  ASSERT_TRUE(echo(2000));
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.77.0.2/32"});
  apply(slots);
  EXPECT_FALSE(echo(400)) << "an established connection survived a TO partition";
}

TEST_F(NetfaultPartition, RemovingTheRuleOrDetachingRestoresTraffic) {
  RuleSlots slots;
  slots[0] = partition(kBoth, {"10.77.0.2/32"});
  apply(slots);
  expect_blocked(env_->a(), kB, 7);
  apply(RuleSlots{});
  expect_open(env_->a(), kB, 7);

  apply(slots);
  expect_blocked(env_->b(), kA, 7);
  Status st = env_->detach();
  ASSERT_TRUE(st.ok()) << st.error().message();
  EXPECT_EQ(env_->prog().mode(), NetfaultProgram::AttachMode::kNone);
  expect_open(env_->a(), kB, 7);
  expect_open(env_->b(), kA, 7);
  EXPECT_TRUE(env_->detach().ok());  // twice is fine
}

TEST_F(NetfaultPartition, MapsHoldExactlyWhatWasCompiled) {
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.0.0.0/8", "fd00::/16"});
  slots[3] = partition(kBoth, {"10.77.0.0/16"}, net::Proto::kUdp, {{53, 53}, {5000, 5999}});
  net::NetRule shape;
  shape.kind = net::NetRule::Kind::kShape;
  shape.dirs = kBoth;
  shape.scope.local = {*parse_cidr("10.77.0.1/32")};
  shape.egress_classid = 0x00010010;
  shape.ingress_classid = 0x00010020;
  slots[31] = shape;
  // A real ifb: attached as clsact filters, apply() points a filter at it.
  auto ifb = add_ifb(env_->a(), "nqifb" + std::to_string(::getpid() % 100000));
  ASSERT_TRUE(ifb.ok()) << ifb.error().message();
  auto compiled = env_->apply(slots, uint32_t(*ifb));
  ASSERT_TRUE(compiled.ok()) << compiled.error().message();
  auto read = env_->prog().read_maps();
  ASSERT_TRUE(read.ok()) << read.error().message();
  EXPECT_TRUE(*read == *compiled);

  slots[0].reset();
  slots[3]->scope.remote = {*parse_cidr("10.78.0.0/16")};
  compiled = env_->apply(slots, 0);
  ASSERT_TRUE(compiled.ok()) << compiled.error().message();
  read = env_->prog().read_maps();
  ASSERT_TRUE(read.ok()) << read.error().message();
  EXPECT_TRUE(*read == *compiled);
  EXPECT_EQ(read->tries[size_t(net::Trie::kRemote6)].size(), 0u);
  EXPECT_EQ(read->config.active, (1u << 3) | (1u << 31));
}

}  // namespace
}  // namespace nq::testing
