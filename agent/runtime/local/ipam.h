// Address management for sandbox pods: one IPv4 subnet behind the bridge,
// the first host address for the bridge, the rest for pods. Pure functions.
#pragma once

#include <set>
#include <string>

#include "common/cidr.h"
#include "common/result.h"

namespace nq::sandbox {

// The sandbox network: 10.213.0.0/24, a private range used only on this
// machine. Pods get the connected /24 and no default route, so they reach each
// other and the bridge address, nothing else.
inline constexpr const char* kDefaultSubnet = "10.213.0.0/24";

// The bridge's address: the first host of `subnet`, with its prefix ("10.213.0.1/24").
// InvalidArgument unless `subnet` is IPv4 with room for a bridge and one pod (/30 or larger).
Result<Cidr> gateway_address(const Cidr& subnet);

// The lowest address of `subnet` that is not the network, the bridge, the
// broadcast address or in `used` (plain addresses, "10.213.0.2"); returned with
// the subnet's prefix. ResourceExhausted when none is left.
Result<Cidr> allocate_ip(const Cidr& subnet, const std::set<std::string>& used);

// "10.213.0.2/24" -> "10.213.0.2".
std::string host_part(const Cidr& address);

}  // namespace nq::sandbox
