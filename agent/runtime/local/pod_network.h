// The network of a sandbox pod: a pinned netns, a veth pair whose host side
// is enslaved to the sandbox bridge, and the pod's address on eth0. The
// address plan comes from ipam.h; this is the thin netlink executor.
#pragma once

#include <string>
#include <string_view>

#include "common/cidr.h"
#include "common/result.h"

namespace nq::sandbox {

inline constexpr const char* kDefaultBridge = "nqbr0";
inline constexpr const char* kPodInterface = "eth0";

// "nq" + the first 8 hex digits of the pod uid: unique per pod, within IFNAMSIZ.
std::string host_veth_name(std::string_view uid);

// Creates `bridge` with `gateway` (e.g. 10.213.0.1/24) and sets it up; an
// existing bridge is reused. Acts in the caller's network namespace.
Status ensure_bridge(const std::string& bridge, const Cidr& gateway);
// Removes the bridge; ok when it does not exist.
Status remove_bridge(const std::string& bridge);

struct PodNetwork {
  std::string netns_path;  // /run/netns/nq-<namespace>.<name>
  std::string host_veth;
  std::string bridge;
  Cidr address;  // the pod's eth0 address with the subnet prefix
};

// Pins a new netns, creates the veth pair (eth0 inside), enslaves the host
// side, brings lo/eth0/host side up and adds the address. On failure the
// caller removes what exists with remove_pod_network (it tolerates partial state).
Status create_pod_network(const PodNetwork& net);
// Deletes the host side of the veth (the peer goes with it) and unpins the
// netns; ok for parts that do not exist.
Status remove_pod_network(const std::string& host_veth, const std::string& netns_path);

}  // namespace nq::sandbox
