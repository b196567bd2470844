#include "agent/runtime/local/pod_network.h"

#include "agent/net/links.h"
#include "common/netns.h"

namespace nq::sandbox {

std::string host_veth_name(std::string_view uid) {
  std::string hex;
  for (char c : uid) {
    if (hex.size() == 8) break;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) hex.push_back(c);
  }
  return "nq" + hex;
}

Status ensure_bridge(const std::string& bridge, const Cidr& gateway) {
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
  auto index = net::link_index(sock, bridge);
  if (!index.ok()) {
    if (index.error().status_code() != Code::kNotFound) return std::move(index).error();
    if (Status st = net::create_bridge(sock, bridge); !st.ok()) {
      // Another `up` may have created it in between.
      if (st.error().status_code() != Code::kAlreadyExists) return st;
    }
  }
  NQ_TRY(net::add_address(sock, bridge, gateway));
  return net::set_link_up(sock, bridge);
}

Status remove_bridge(const std::string& bridge) {
  NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
  return net::delete_link(sock, bridge);
}

Status create_pod_network(const PodNetwork& n) {
  NQ_TRY(create_named_netns(n.netns_path));
  NQ_ASSIGN_OR_RETURN(Netns ns, Netns::open(n.netns_path));
  {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_TRY(net::create_veth(sock, n.host_veth, kPodInterface, ns.fd()));
    NQ_TRY(net::set_link_master(sock, n.host_veth, n.bridge));
    NQ_TRY(net::set_link_up(sock, n.host_veth));
  }
  // No default route: the connected subnet is all a pod can reach.
  return run_in_netns(ns, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_TRY(net::set_link_up(sock, "lo"));
    NQ_TRY(net::add_address(sock, kPodInterface, n.address));
    NQ_TRY(net::set_link_up(sock, kPodInterface));
    // Both ends are up now: the pod's first packet must not meet the noop qdisc.
    return net::wait_link_running(sock, kPodInterface);
  });
}

Status remove_pod_network(const std::string& host_veth, const std::string& netns_path) {
  if (!host_veth.empty()) {
    NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
    NQ_TRY(net::delete_link(sock, host_veth));
  }
  if (!netns_path.empty()) NQ_TRY(remove_named_netns(netns_path));
  return ok();
}

}  // namespace nq::sandbox
