// `nqctl sandbox measure`: the probes of common/traffic.h run from inside one
// pod's netns against another pod, as data (JSON) and as human-readable text.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/netns.h"

namespace nq::nqctl {

struct MeasureRequest {
  bool connect = false;
  int rtt = 0;                                         // TCP echo exchanges
  std::optional<std::chrono::nanoseconds> throughput;  // per direction
  int udp = 0;                                         // UDP echo datagrams
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);
};

// Runs the requested probes from `from` to `ip`. A failing probe is a result
// ({"error": ...}), not a failure: a partition is what one measures.
nlohmann::json measure(const Netns& from, const std::string& ip, const MeasureRequest& req);
std::string render_measurement(const nlohmann::json& m);

}  // namespace nq::nqctl
