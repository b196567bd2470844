#include "tests/node/net/bpf_env.h"

#include <sys/utsname.h>

#include <cstdio>

#include "agent/net/links.h"
#include "common/traffic.h"

namespace nq::testing {

Result<std::unique_ptr<BpfEnv>> BpfEnv::create(const net::NetfaultLoadOptions& options) {
  std::unique_ptr<BpfEnv> env(new BpfEnv());
  NQ_ASSIGN_OR_RETURN(env->pair_, NetnsPair::create());
  NQ_ASSIGN_OR_RETURN(env->server_a_, ServerThread::start(env->pair_->a()));
  NQ_ASSIGN_OR_RETURN(env->server_b_, ServerThread::start(env->pair_->b()));
  NQ_ASSIGN_OR_RETURN(env->eth0_, ifindex_in(env->pair_->a(), "eth0"));
  NQ_ASSIGN_OR_RETURN(net::NetfaultProgram prog, net::NetfaultProgram::load(options));
  env->prog_ = std::make_unique<net::NetfaultProgram>(std::move(prog));
  return env;
}

Status BpfEnv::attach() {
  return run_in_netns(a(), [&] { return prog_->attach(eth0_); });
}

Status BpfEnv::detach() {
  return run_in_netns(a(), [&] { return prog_->detach(); });
}

Result<net::CompiledRules> BpfEnv::apply(const net::RuleSlots& slots, uint32_t ifb_ifindex) {
  NQ_ASSIGN_OR_RETURN(net::CompiledRules compiled, net::compile_rules(slots, ifb_ifindex));
  NQ_TRY(prog_->apply(compiled));
  return compiled;
}

Result<std::chrono::nanoseconds> connect_from(const Netns& from, const std::string& ip,
                                              uint16_t port, std::chrono::nanoseconds timeout) {
  return run_in_netns(from, [&] { return traffic::tcp_connect(ip, port, timeout); });
}

Result<int> udp_echoes_from(const Netns& from, const std::string& ip, int count) {
  return run_in_netns(from, [&]() -> Result<int> {
    NQ_ASSIGN_OR_RETURN(traffic::UdpProbeResult r,
                        traffic::udp_echo_probe(ip, 7, count, 5ms, 300ms));
    return r.received;
  });
}

Result<int> ifindex_in(const Netns& ns, const std::string& name) {
  return run_in_netns(ns, [&]() -> Result<int> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    return net::link_index(sock, name);
  });
}

Result<int> add_ifb(const Netns& ns, const std::string& name) {
  Status st = run_in_netns(ns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_TRY(net::create_ifb(sock, name));
    return net::set_link_up(sock, name);
  });
  if (!st.ok()) return std::move(st).error();
  return ifindex_in(ns, name);
}

Result<bool> filter_present(const Netns& ns, int ifindex, bpf_tc_attach_point point,
                            uint32_t priority) {
  return run_in_netns(ns, [&]() -> Result<bool> {
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = point;
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = net::NetfaultProgram::kLegacyHandle;
    opts.priority = priority;
    const int rc = bpf_tc_query(&hook, &opts);
    if (rc == 0) return opts.prog_id != 0;
    // No filter: ENOENT; no clsact qdisc at all: EINVAL.
    if (rc == -ENOENT || rc == -EINVAL) return false;
    return Error::from_errno(-rc, "bpf_tc_query");
  });
}

Result<bool> clsact_present(const Netns& ns, int ifindex) {
  return run_in_netns(ns, [&]() -> Result<bool> {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    nl_cache* raw = nullptr;
    if (int rc = rtnl_qdisc_alloc_cache(sock.get(), &raw); rc < 0)
      return Error::from_netlink(rc, "dump qdiscs");
    net::CachePtr cache(raw);
    for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
      auto* tc = reinterpret_cast<rtnl_tc*>(o);
      const char* kind = rtnl_tc_get_kind(tc);
      if (rtnl_tc_get_ifindex(tc) == ifindex && kind && std::string(kind) == "clsact") return true;
    }
    return false;
  });
}

std::optional<std::string> tcx_missing() {
  utsname u{};
  int major = 0, minor = 0;
  if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &major, &minor) != 2)
    return "cannot tell the kernel version";
  if (major > 6 || (major == 6 && minor >= 6)) return std::nullopt;
  return std::string("kernel ") + u.release +
         " has no TCX links (6.6+); the clsact fallback is "
         "covered by NetfaultLegacy";
}

net::NetRule partition(uint8_t dirs, std::vector<std::string> remote, net::Proto proto,
                       std::vector<net::PortRange> remote_ports) {
  net::NetRule r;
  r.kind = net::NetRule::Kind::kPartition;
  r.dirs = dirs;
  for (const std::string& c : remote) r.scope.remote.push_back(*parse_cidr(c));
  r.scope.proto = proto;
  r.scope.remote_ports = std::move(remote_ports);
  return r;
}

}  // namespace nq::testing
