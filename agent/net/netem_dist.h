// netem delay distribution tables, generated natively the way iproute2's
// netem/normal.c, pareto.c and paretonormal.c generate the .dist files tc
// loads (so a fault behaves as `tc qdisc ... delay X Y distribution D`),
// without depending on those files being installed on the node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "agent/net/netem.h"

namespace nq::net {

// Entries per table, as iproute2 generates them.
inline constexpr size_t kNetemDistSize = 4096;
// The kernel's fixed-point scale for table entries (NETEM_DIST_SCALE): an
// entry of 8192 means "one jitter above the mean delay".
inline constexpr int kNetemDistScale = 8192;

// The scaled inverse CDF of `dist` (kNetemDistSize entries); empty for
// kUniform, which the kernel implements without a table.
std::vector<int16_t> netem_distribution_table(DelayDistribution dist);

}  // namespace nq::net
