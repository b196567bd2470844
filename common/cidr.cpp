#include "common/cidr.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>

namespace nq {
namespace {

void clear_host_bits(Cidr& c) {
  const int bytes = c.max_prefix() / 8;
  for (int i = 0; i < bytes; ++i) {
    const int bit_start = i * 8;
    if (bit_start >= c.prefix_len) {
      c.addr[i] = 0;
    } else if (bit_start + 8 > c.prefix_len) {
      c.addr[i] &= static_cast<uint8_t>(0xff << (8 - (c.prefix_len - bit_start)));
    }
  }
}

}  // namespace

bool Cidr::contains(const Cidr& other) const noexcept {
  if (family != other.family || other.prefix_len < prefix_len) return false;
  Cidr masked = other;
  masked.prefix_len = prefix_len;
  clear_host_bits(masked);
  return masked.addr == addr;
}

std::string Cidr::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, addr.data(), buf, sizeof(buf));
  return std::string(buf) + "/" + std::to_string(prefix_len);
}

namespace {

Result<Cidr> parse(std::string_view text, std::string_view field, bool keep_host_bits) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  Cidr c;
  const size_t slash = text.find('/');
  const std::string host(text.substr(0, slash));
  if (::inet_pton(AF_INET, host.c_str(), c.addr.data()) == 1) {
    c.family = AF_INET;
  } else if (::inet_pton(AF_INET6, host.c_str(), c.addr.data()) == 1) {
    c.family = AF_INET6;
  } else {
    return Error::invalid_argument(field, quoted + " is not an IPv4/IPv6 address or CIDR");
  }
  c.prefix_len = static_cast<uint8_t>(c.max_prefix());
  if (slash != std::string_view::npos) {
    const std::string_view len = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), value);
    if (len.empty() || ec != std::errc() || end != len.data() + len.size() ||
        value > static_cast<unsigned>(c.max_prefix()))
      return Error::invalid_argument(
          field, quoted + ": prefix length must be 0.." + std::to_string(c.max_prefix()));
    c.prefix_len = static_cast<uint8_t>(value);
  }
  if (!keep_host_bits) clear_host_bits(c);
  return c;
}

}  // namespace

Result<Cidr> parse_cidr(std::string_view text, std::string_view field) {
  return parse(text, field, false);
}

Result<Cidr> parse_interface_address(std::string_view text, std::string_view field) {
  return parse(text, field, true);
}

}  // namespace nq
