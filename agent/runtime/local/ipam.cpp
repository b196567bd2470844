#include "agent/runtime/local/ipam.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

namespace nq::sandbox {
namespace {

uint32_t to_u32(const Cidr& c) {
  uint32_t be = 0;
  std::memcpy(&be, c.addr.data(), 4);
  return ntohl(be);
}

Cidr from_u32(uint32_t host_order, uint8_t prefix) {
  Cidr c;
  c.family = AF_INET;
  const uint32_t be = htonl(host_order);
  std::memcpy(c.addr.data(), &be, 4);
  c.prefix_len = prefix;
  return c;
}

Status check_subnet(const Cidr& subnet) {
  if (subnet.family != AF_INET)
    return Error::invalid_argument("subnet", subnet.str() + " is not IPv4");
  if (subnet.prefix_len < 8)
    return Error::invalid_argument("subnet", subnet.str() + " is too large (/8 at least)");
  if (subnet.prefix_len > 30)
    return Error::invalid_argument(
        "subnet", subnet.str() + " has no room for a bridge and a pod (/30 at most)");
  return ok();
}

}  // namespace

Result<Cidr> gateway_address(const Cidr& subnet) {
  NQ_TRY(check_subnet(subnet));
  return from_u32(to_u32(subnet) + 1, subnet.prefix_len);
}

Result<Cidr> allocate_ip(const Cidr& subnet, const std::set<std::string>& used) {
  NQ_TRY(check_subnet(subnet));
  const uint32_t network = to_u32(subnet);
  const uint32_t size = 1u << (32 - subnet.prefix_len);
  const uint32_t broadcast = network + (size - 1);
  // network + 1 is the bridge.
  for (uint32_t a = network + 2; a < broadcast; ++a) {
    const Cidr candidate = from_u32(a, subnet.prefix_len);
    if (!used.count(host_part(candidate))) return candidate;
  }
  return Error::status(Code::kResourceExhausted,
                       "no free address left in sandbox subnet " + subnet.str());
}

std::string host_part(const Cidr& address) {
  const std::string s = address.str();
  return s.substr(0, s.find('/'));
}

}  // namespace nq::sandbox
