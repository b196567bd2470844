// The traffic-control state of a whole network namespace in a comparable
// form: its devices and every qdisc (clsact and ingress included), class and
// filter on them, statistics stripped. Node tests and the crash test take it
// before and after to prove that nodequake left nothing behind and restored
// what was there. (TCX-attached BPF programs are not tc objects.)
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "common/netns.h"
#include "common/result.h"

namespace nq::testing {

struct DeviceState {
  std::string name;
  std::string kind;  // rtnetlink link kind ("veth", "ifb"), "" for lo
  auto operator<=>(const DeviceState&) const = default;
};

struct TcObjectState {
  std::string device;
  std::string type;  // "qdisc", "class", "filter"
  std::string kind;
  uint32_t handle = 0;
  uint32_t parent = 0;
  uint32_t info = 0;           // filters: priority and protocol
  std::vector<uint8_t> attrs;  // kind, options, ... without statistics
  auto operator<=>(const TcObjectState&) const = default;
  // "eth0: qdisc htb 1: parent root [options 0a0b...]"
  std::string str() const;
};

struct TcState {
  std::vector<DeviceState> devices;    // sorted by name
  std::vector<TcObjectState> objects;  // sorted
  bool operator==(const TcState&) const = default;
  // One line per device and object.
  std::string str() const;
  // Objects of `device` only.
  std::vector<TcObjectState> on(const std::string& device) const;
};

// Lines only in `before` ("- ...") or only in `after` ("+ ..."); "" when equal.
std::string diff(const TcState& before, const TcState& after);

// gtest prints states through this.
std::ostream& operator<<(std::ostream& os, const TcState& state);

Result<TcState> capture_tc_state(const Netns& netns);

}  // namespace nq::testing
