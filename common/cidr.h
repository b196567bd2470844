// IPv4/IPv6 prefixes as written in experiment files and API requests.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq {

struct Cidr {
  int family = 0;                  // AF_INET or AF_INET6
  std::array<uint8_t, 16> addr{};  // network byte order; IPv4 uses the first 4 bytes
  uint8_t prefix_len = 0;

  int max_prefix() const noexcept { return family == 2 /*AF_INET*/ ? 32 : 128; }
  bool contains(const Cidr& other) const noexcept;
  std::string str() const;
  bool operator==(const Cidr&) const = default;
};

// "10.0.0.0/8", "10.1.2.3" (a host, /32), "fd00::/64". Host bits are cleared
// ("10.1.2.3/8" becomes 10.0.0.0/8). The error names `field`.
Result<Cidr> parse_cidr(std::string_view text, std::string_view field = "cidr");

// An interface address with its prefix ("10.213.0.2/24"): like parse_cidr but
// the host bits are kept.
Result<Cidr> parse_interface_address(std::string_view text, std::string_view field = "address");

}  // namespace nq
