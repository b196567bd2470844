// IPv6 (separate tries, neighbour discovery through a partition) and IP
// fragments (non-first fragments carry no ports) on the veth pair.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include "agent/net/links.h"
#include "agent/net/netlink.h"
#include "tests/node/net/bpf_env.h"

namespace nq::testing {
namespace {

using net::kBoth;
using net::kEgress;
using net::RuleSlots;

constexpr const char* kA6 = "fd77::1";
constexpr const char* kB6 = "fd77::2";
constexpr const char* kA = NetnsPair::kIpA;
constexpr const char* kB = NetnsPair::kIpB;
// The v6 servers listen on their own ports: NetnsPair's servers hold the
// default ones on 0.0.0.0.
constexpr traffic::Ports kPorts6{.echo = 1007, .sink = 1009, .source = 1019, .http = 18080};

// Adds addr/64 to eth0 without duplicate address detection, which would
// keep it tentative (unusable) for a second or two.
Status add_v6(const Netns& ns, const char* addr) {
  return run_in_netns(ns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_ASSIGN_OR_RETURN(int ifindex, net::link_index(sock, "eth0"));
    NQ_ASSIGN_OR_RETURN(Cidr c, parse_interface_address(std::string(addr) + "/64"));
    net::NlAddrPtr local(nl_addr_build(AF_INET6, c.addr.data(), 16));
    nl_addr_set_prefixlen(local.get(), 64);
    net::AddrPtr a(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(a.get(), ifindex);
    rtnl_addr_set_family(a.get(), AF_INET6);
    if (int rc = rtnl_addr_set_local(a.get(), local.get()); rc < 0)
      return Error::from_netlink(rc, "address");
    rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
    if (int rc = rtnl_addr_add(sock.get(), a.get(), NLM_F_CREATE); rc < 0)
      return Error::from_netlink(rc, std::string("add ") + addr);
    return ok();
  });
}

// A traffic server on "::" inside ns, on its own thread.
class Server6 {
 public:
  static Result<std::unique_ptr<Server6>> start(const Netns& ns) {
    std::unique_ptr<Server6> s(new Server6());
    NQ_ASSIGN_OR_RETURN(
        s->server_, run_in_netns(ns, [] { return traffic::Server::create("::", kPorts6, "v6"); }));
    s->thread_ = std::thread([p = s->server_.get()] { (void)p->run(); });
    return s;
  }
  ~Server6() {
    server_->stop();
    thread_.join();
  }

 private:
  Server6() = default;
  std::unique_ptr<traffic::Server> server_;
  std::thread thread_;
};

// One UDP datagram of `size` bytes to ip:port from inside ns; true when the
// echo server's answer comes back whole. Beyond the 1500-byte MTU the
// datagram travels as IP fragments both ways.
Result<bool> udp_echo_once(const Netns& ns, const std::string& ip, uint16_t port, size_t size) {
  return run_in_netns(ns, [&]() -> Result<bool> {
    const bool v6 = ip.find(':') != std::string::npos;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (v6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(port);
      ::inet_pton(AF_INET6, ip.c_str(), &s6->sin6_addr);
      len = sizeof(*s6);
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(port);
      ::inet_pton(AF_INET, ip.c_str(), &s4->sin_addr);
      len = sizeof(*s4);
    }
    UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno(errno, "socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
      return Error::from_errno(errno, "connect");
    std::vector<char> out(size, 'x'), in(size + 1);
    if (::send(fd.get(), out.data(), out.size(), 0) != static_cast<ssize_t>(size))
      return Error::from_errno(errno, "send");
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) return false;
    return ::recv(fd.get(), in.data(), in.size(), 0) == static_cast<ssize_t>(size);
  });
}

class NetfaultIpv6 : public ::testing::Test {
 protected:
  void SetUp() override {
    NQ_REQUIRE_ROOT();
    auto env = BpfEnv::create();
    ASSERT_TRUE(env.ok()) << env.error().message();
    env_ = std::move(*env);
    for (auto [ns, addr] : {std::pair{&env_->a(), kA6}, std::pair{&env_->b(), kB6}}) {
      Status st = add_v6(*ns, addr);
      ASSERT_TRUE(st.ok()) << st.error().message();
    }
    auto sa = Server6::start(env_->a());
    ASSERT_TRUE(sa.ok()) << sa.error().message();
    server_a_ = std::move(*sa);
    auto sb = Server6::start(env_->b());
    ASSERT_TRUE(sb.ok()) << sb.error().message();
    server_b_ = std::move(*sb);
    Status st = env_->attach();
    ASSERT_TRUE(st.ok()) << st.error().message();
  }
  void TearDown() override {
    server_a_.reset();
    server_b_.reset();
    env_.reset();
  }
  void apply(const RuleSlots& slots) {
    auto st = env_->apply(slots);
    ASSERT_TRUE(st.ok()) << st.error().message();
  }

  std::unique_ptr<BpfEnv> env_;
  std::unique_ptr<Server6> server_a_, server_b_;
};

TEST_F(NetfaultIpv6, ToPartitionLetsNeighbourDiscoveryThrough) {
  RuleSlots slots;
  slots[0] = partition(kEgress, {"fd77::2/128"});
  apply(slots);
  // The peer goes first: to answer its neighbour solicitation the pod must
  // send an advertisement to fd77::2, in the blocked direction.
  auto open = connect_from(env_->b(), kA6, kPorts6.echo);
  EXPECT_TRUE(open.ok()) << open.error().message();
  auto blocked = connect_from(env_->a(), kB6, kPorts6.echo, kBlockedTimeout);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.error().status_code(), Code::kDeadlineExceeded);
  // IPv4 is another trie: untouched.
  EXPECT_TRUE(connect_from(env_->a(), kB, 7).ok());
}

TEST_F(NetfaultIpv6, Ipv4RulesDoNotTouchIpv6) {
  RuleSlots slots;
  slots[0] = partition(kBoth, {"10.77.0.0/24"});
  apply(slots);
  EXPECT_FALSE(connect_from(env_->a(), kB, 7, kBlockedTimeout).ok());
  auto v6 = connect_from(env_->a(), kB6, kPorts6.echo);
  EXPECT_TRUE(v6.ok()) << v6.error().message();
}

TEST_F(NetfaultIpv6, FragmentedDatagramsOfAdmittedFlowsPass) {
  // Without a rule, 3000-byte echoes work both families (the baseline).
  for (const char* ip : {kA, kA6}) {
    auto r = udp_echo_once(env_->b(), ip, ip == kA ? 7 : kPorts6.echo, 3000);
    ASSERT_TRUE(r.ok()) << r.error().message();
    ASSERT_TRUE(*r) << ip << " without any rule";
  }
  RuleSlots slots;
  slots[0] = partition(kEgress, {"10.77.0.2/32", "fd77::2/128"}, net::Proto::kUdp);
  apply(slots);
  for (const char* ip : {kA, kA6}) {
    const uint16_t port = ip == kA ? 7 : kPorts6.echo;
    // The peer's datagram admits the flow; the pod's fragmented answer
    // (first fragment matched by ports, the rest by addresses) gets out.
    auto in = udp_echo_once(env_->b(), ip, port, 3000);
    ASSERT_TRUE(in.ok()) << in.error().message();
    EXPECT_TRUE(*in) << "echo from the pod (" << ip << ") was lost";
  }
  for (const char* ip : {kB, kB6}) {
    // The pod's own datagram: first fragment dropped, the rest cannot help.
    auto out = udp_echo_once(env_->a(), ip, ip == kB ? 7 : kPorts6.echo, 3000);
    ASSERT_TRUE(out.ok()) << out.error().message();
    EXPECT_FALSE(*out) << "a fragmented datagram crossed a TO partition to " << ip;
  }
}

}  // namespace
}  // namespace nq::testing
