// The validated, kernel-independent form of a network fault's NetworkPath:
// which interface, which directions, which packets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/cidr.h"
#include "common/result.h"

namespace nodequake::v1 {
class NetworkPath;
}

namespace nq::net {

// Bitmask of hook directions, seen from the pod.
enum Dir : uint8_t {
  kEgress = 1,   // packets leaving the pod ("to")
  kIngress = 2,  // packets arriving at the pod ("from")
  kBoth = kEgress | kIngress,
};

enum class Proto : uint8_t { kAny = 0, kIcmp = 1, kTcp = 6, kUdp = 17 };

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool operator==(const PortRange&) const = default;
};

// Packets a fault applies to; `remote` is the peer, `local` the pod itself.
// Empty lists match everything.
struct Scope {
  std::vector<Cidr> remote;
  std::vector<PortRange> remote_ports;
  std::vector<Cidr> local;
  std::vector<PortRange> local_ports;
  Proto proto = Proto::kAny;
  bool operator==(const Scope&) const = default;
};

struct Path {
  std::string ifname = "eth0";
  uint8_t dirs = kEgress;
  Scope scope;
  bool operator==(const Path&) const = default;
};

inline constexpr size_t kMaxCidrsPerScope = 64;
inline constexpr size_t kMaxPortRanges = 8;

// Validates a NetworkPath; errors name the field under `field` (e.g. "spec.netem.path").
Result<Path> path_from_proto(const nodequake::v1::NetworkPath& proto, const std::string& field);

}  // namespace nq::net
