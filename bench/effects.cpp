#include "bench/effects.h"

#include <linux/pkt_sched.h>

#include "agent/net/links.h"
#include "agent/net/qdisc.h"
#include "agent/net/tc_dump.h"
#include "common/traffic.h"

namespace nq::bench {

const char* effect_name(Effect e) {
  switch (e) {
    case Effect::kActive:
      return "active";
    case Effect::kGone:
      return "gone";
    case Effect::kPartial:
      return "partial";
  }
  return "?";
}

Result<EffectProbe> EffectProbe::open(const BenchPod& client, const BenchPod& server,
                                      const std::string& ifname,
                                      std::chrono::milliseconds connect_timeout) {
  NQ_ASSIGN_OR_RETURN(Netns ns, Netns::open(client.netns_path));
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock,
                      run_in_netns(ns, [] { return net::NlSocket::open_route(); }));
  auto ifindex = net::link_index(sock, ifname);
  if (!ifindex.ok()) return std::move(ifindex).error().wrapped(client.key() + " " + ifname);
  return EffectProbe(std::move(ns), std::move(sock), *ifindex, server.ip, connect_timeout);
}

Result<Observation> EffectProbe::observe(FaultKind fault, Installer installer) {
  return fault == FaultKind::kPartition ? observe_partition() : observe_qdiscs(installer);
}

Result<Observation> EffectProbe::observe_partition() {
  const traffic::Ports ports;
  auto rtt = run_in_netns(
      netns_, [&] { return traffic::tcp_connect(server_ip_, ports.echo, connect_timeout_); });
  if (rtt.ok()) {
    const double ms = std::chrono::duration<double, std::milli>(*rtt).count();
    return Observation{Effect::kGone,
                       "connect to " + server_ip_ + " took " + std::to_string(ms) + " ms"};
  }
  // Dropped SYNs time out (BPF drop at tc egress); iptables' DROP in OUTPUT
  // may instead fail the connect with EPERM. Either way nothing gets through.
  return Observation{Effect::kActive, "connect to " + server_ip_ + ": " + rtt.error().message()};
}

Result<Observation> EffectProbe::observe_qdiscs(Installer installer) {
  NQ_ASSIGN_OR_RETURN(std::vector<net::TcObject> qdiscs, net::dump_qdiscs(sock_, ifindex_));
  std::string detail;
  bool tbf_anywhere = false;
  bool tbf_root = false;
  for (const auto& q : qdiscs) {
    detail += (detail.empty() ? "" : "; ") + net::describe(q);
    if (q.kind != "tbf") continue;
    tbf_anywhere = true;
    tbf_root = tbf_root || q.parent == TC_H_ROOT;
  }
  if (detail.empty()) detail = "no visible qdisc";
  if (installer == Installer::kExec) {
    const Effect e = tbf_root ? Effect::kActive : (tbf_anywhere ? Effect::kPartial : Effect::kGone);
    return Observation{e, detail};
  }
  NQ_ASSIGN_OR_RETURN(bool ours, net::root_is(sock_, ifindex_, net::kRootHandle));
  const Effect e = ours && tbf_anywhere     ? Effect::kActive
                   : !ours && !tbf_anywhere ? Effect::kGone
                                            : Effect::kPartial;
  return Observation{e, detail};
}

}  // namespace nq::bench
