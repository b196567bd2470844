// Network devices over rtnetlink (libnl): what sandbox pods, ifb-based
// ingress shaping and the tests need. Every call acts in the namespace of `sock`.
#pragma once

#include <chrono>
#include <string>

#include "agent/net/netlink.h"
#include "common/cidr.h"
#include "common/result.h"

namespace nq::net {

// ifindex of `name`; NotFound when there is no such device.
Result<int> link_index(NlSocket& sock, const std::string& name);

// A veth pair: `name` stays in the socket's namespace, `peer_name` is created
// directly inside the namespace `peer_netns_fd` (-1: the same namespace).
Status create_veth(NlSocket& sock, const std::string& name, const std::string& peer_name,
                   int peer_netns_fd);
Status create_ifb(NlSocket& sock, const std::string& name);
Status create_bridge(NlSocket& sock, const std::string& name);
// Removes a device; ok when it does not exist.
Status delete_link(NlSocket& sock, const std::string& name);
Status set_link_up(NlSocket& sock, const std::string& name);
// Waits until `name` is IFF_RUNNING (operationally up). A device set up has no
// qdisc but noop, which drops everything, until the kernel's linkwatch work
// sees the carrier and activates it: on a busy machine that lags by
// milliseconds, enough to lose a first SYN and pay a 1 s retransmit.
Status wait_link_running(NlSocket& sock, const std::string& name,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
Status set_link_mtu(NlSocket& sock, const std::string& name, uint32_t mtu);
Status set_link_master(NlSocket& sock, const std::string& name, const std::string& master);
// Adds `address` (host bits kept, e.g. 10.213.0.2/24) to `name`; ok if present.
Status add_address(NlSocket& sock, const std::string& name, const Cidr& address);

}  // namespace nq::net
