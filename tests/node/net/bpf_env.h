// Shared set-up of the netfault node tests: a NetnsPair with traffic servers
// on both sides and the netfault program for a's eth0, plus probes.
#pragma once

#include <bpf/libbpf.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/net/netfault_bpf.h"
#include "agent/net/rules.h"
#include "tests/support/topology.h"

namespace nq::testing {

using namespace std::chrono_literals;

// A blocked handshake is given this long before it counts as dropped.
inline constexpr auto kBlockedTimeout = 400ms;
inline constexpr auto kOpenTimeout = 3s;

class BpfEnv {
 public:
  static Result<std::unique_ptr<BpfEnv>> create(const net::NetfaultLoadOptions& options = {});

  const Netns& a() const { return pair_->a(); }
  const Netns& b() const { return pair_->b(); }
  // ifindex of eth0 inside a.
  int eth0() const { return eth0_; }
  net::NetfaultProgram& prog() { return *prog_; }
  // Destroys the program object (closing its fds and links), as a dying agent would.
  void drop_prog() { prog_.reset(); }

  Status attach();  // inside a
  Status detach();  // inside a
  // Compiles and applies `slots`; returns the compiled contents.
  Result<net::CompiledRules> apply(const net::RuleSlots& slots, uint32_t ifb_ifindex = 0);

 private:
  BpfEnv() = default;
  std::unique_ptr<NetnsPair> pair_;
  std::unique_ptr<ServerThread> server_a_, server_b_;
  std::unique_ptr<net::NetfaultProgram> prog_;
  int eth0_ = 0;
};

// A TCP handshake from inside `from` to ip:port.
Result<std::chrono::nanoseconds> connect_from(const Netns& from, const std::string& ip,
                                              uint16_t port,
                                              std::chrono::nanoseconds timeout = kOpenTimeout);
// `count` UDP echo datagrams from inside `from`; returns how many came back.
Result<int> udp_echoes_from(const Netns& from, const std::string& ip, int count);
// ifindex of `name` inside `ns`.
Result<int> ifindex_in(const Netns& ns, const std::string& name);
// An ifb device `name` inside `ns`, up; returns its ifindex. It goes with the namespace.
Result<int> add_ifb(const Netns& ns, const std::string& name);

// Is there a nodequake filter (kLegacyHandle) at `priority` on that clsact
// hook of ifindex inside ns? (libbpf's query.)
Result<bool> filter_present(const Netns& ns, int ifindex, bpf_tc_attach_point point,
                            uint32_t priority = net::NetfaultProgram::kLegacyPriority);
// Is there a clsact qdisc on ifindex inside ns? (A netlink qdisc dump.)
Result<bool> clsact_present(const Netns& ns, int ifindex);

// Why TCX links cannot work here (kernel older than 6.6), or nothing.
std::optional<std::string> tcx_missing();

// A rule on remote CIDRs (empty: any) with an optional protocol and remote ports.
net::NetRule partition(uint8_t dirs, std::vector<std::string> remote = {},
                       net::Proto proto = net::Proto::kAny,
                       std::vector<net::PortRange> remote_ports = {});

}  // namespace nq::testing
