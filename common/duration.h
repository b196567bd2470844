// Go-style durations ("500ms", "1m30s", "2h"), the format of Kubernetes and
// Chaos Mesh manifests.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq {

// Units: ns, us (or µs), ms, s, m, h; decimals allowed ("1.5s"); a bare "0" is zero.
// Negative durations are rejected.
Result<std::chrono::nanoseconds> parse_duration(std::string_view text);

// Shortest exact Go-style rendering ("1m30s", "500ms", "0s").
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace nq
