#include "common/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace nq {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "12.5mbit" into 12.5 and "mbit"; false when there is no number.
bool split_number(std::string_view text, long double& value, std::string& unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return false;
  const std::string number(text.substr(0, i));
  if (number.find('.') != number.rfind('.') || number == ".") return false;
  value = std::stold(number);
  unit = std::string(text.substr(i));
  return true;
}

long double prefix_factor(std::string_view prefix, bool& ok) {
  ok = true;
  if (prefix.empty()) return 1;
  if (prefix == "k") return 1e3L;
  if (prefix == "m") return 1e6L;
  if (prefix == "g") return 1e9L;
  if (prefix == "t") return 1e12L;
  if (prefix == "ki") return 1024.0L;
  if (prefix == "mi") return 1024.0L * 1024;
  if (prefix == "gi") return 1024.0L * 1024 * 1024;
  if (prefix == "ti") return 1024.0L * 1024 * 1024 * 1024;
  ok = false;
  return 0;
}

}  // namespace

Result<uint64_t> parse_rate(std::string_view text, std::string_view field) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  long double value = 0;
  std::string unit;
  if (!split_number(text, value, unit))
    return Error::invalid_argument(field, quoted + " is not a rate (e.g. 1mbit, 500kbit, 2mbps)");
  unit = lower(unit);
  if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "/s") unit.resize(unit.size() - 2);
  long double bits_per_unit = 1;
  std::string prefix;
  if (unit.empty()) {
    bits_per_unit = 1;
  } else if (unit.size() >= 3 && unit.substr(unit.size() - 3) == "bit") {
    prefix = unit.substr(0, unit.size() - 3);
  } else if (unit.size() >= 3 && unit.substr(unit.size() - 3) == "bps") {
    prefix = unit.substr(0, unit.size() - 3);
    bits_per_unit = 8;
  } else {
    return Error::invalid_argument(field,
                                   quoted + ": unknown unit \"" + unit +
                                       "\" (bit, kbit, mbit, gbit; bps, kbps, mbps = bytes/s)");
  }
  bool ok = false;
  const long double factor = prefix_factor(prefix, ok);
  if (!ok) return Error::invalid_argument(field, quoted + ": unknown prefix \"" + prefix + "\"");
  const long double bps = value * factor * bits_per_unit;
  if (bps < 1 || bps > 1e15L) return Error::invalid_argument(field, quoted + " is out of range");
  return static_cast<uint64_t>(std::llround(bps));
}

Result<uint64_t> parse_bytes(std::string_view text, std::string_view field) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  long double value = 0;
  std::string unit;
  if (!split_number(text, value, unit))
    return Error::invalid_argument(field, quoted + " is not a size (e.g. 1500, 32k, 10Mi)");
  unit = lower(unit);
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  bool ok = false;
  const long double factor = prefix_factor(unit, ok);
  if (!ok) return Error::invalid_argument(field, quoted + ": unknown unit");
  const long double bytes = value * factor;
  if (bytes > 1e18L) return Error::invalid_argument(field, quoted + " is too large");
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string format_rate(double bps) {
  char buf[64];
  if (bps >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2f Gbit/s", bps / 1e9);
  } else if (bps >= 1e6) {
    std::snprintf(buf, sizeof(buf), "%.2f Mbit/s", bps / 1e6);
  } else if (bps >= 1e3) {
    std::snprintf(buf, sizeof(buf), "%.1f kbit/s", bps / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0f bit/s", bps);
  }
  return buf;
}

}  // namespace nq
