// Everything nodequake may touch in a pod's network namespace, in one
// comparable value: devices and tc objects (tc_state.h) plus the programs
// attached to each device's TCX hooks, which are not tc objects.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/netns.h"
#include "tests/support/tc_state.h"

namespace nq::testing {

struct NetnsKernelState {
  TcState tc;
  // "eth0 tcx_egress nq_egress", sorted.
  std::vector<std::string> tcx;
  bool operator==(const NetnsKernelState&) const = default;
};

Result<NetnsKernelState> capture_kernel_state(const Netns& netns);
// "" when equal, else the lines that differ.
std::string diff(const NetnsKernelState& before, const NetnsKernelState& after);
std::ostream& operator<<(std::ostream& os, const NetnsKernelState& state);

}  // namespace nq::testing
