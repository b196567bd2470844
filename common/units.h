// Rates and sizes as written in experiment files and on the command line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq {

// tc's rate syntax, which Chaos Mesh's bandwidth.rate also uses: "bit",
// "kbit", "mbit", "gbit", "tbit" are bits per second; "bps", "kbps", "mbps",
// "gbps", "tbps" are BYTES per second (tc's convention). Prefixes are
// decimal (k = 1000); "kibit", "mibit", "gibit" and "kibps"... are binary.
// Case-insensitive; a bare number is bits per second. Returns bits per second.
Result<uint64_t> parse_rate(std::string_view text, std::string_view field = "rate");

// "1500", "32k", "10Mi", "1.5MB": bytes. k/M/G/T = 1000^n, Ki/Mi/Gi/Ti =
// 1024^n (Kubernetes quantities); a trailing "b"/"B" is allowed.
Result<uint64_t> parse_bytes(std::string_view text, std::string_view field = "size");

// "1.5Mbit/s", "800kbit/s": human rendering of bits per second.
std::string format_rate(double bits_per_second);

}  // namespace nq
