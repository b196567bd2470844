#include "common/duration.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>

namespace nq {
namespace {

struct Unit {
  std::string_view name;
  int64_t ns;
};

// Longest names first so "ms" is not read as "m" + "s".
constexpr Unit kUnits[] = {
    {"ns", 1},           {"us", 1000},         {"\xc2\xb5s", 1000},    {"ms", 1000000},
    {"s", 1000000000LL}, {"m", 60000000000LL}, {"h", 3600000000000LL},
};

}  // namespace

Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  const std::string original(text);
  auto bad = [&](std::string_view why) {
    return Error::invalid_argument("duration", "\"" + original + "\": " + std::string(why));
  };
  if (text.empty()) return bad("empty");
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.front() == '-') return bad("negative");
  if (text.front() == '+') text.remove_prefix(1);

  long double total = 0;
  while (!text.empty()) {
    size_t i = 0;
    bool digits = false;
    while (i < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
      digits = digits || text[i] != '.';
      ++i;
    }
    if (!digits) return bad("expected a number");
    const std::string number(text.substr(0, i));
    if (number.find('.') != number.rfind('.')) return bad("malformed number");
    text.remove_prefix(i);
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (text.substr(0, u.name.size()) == u.name) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return bad("missing or unknown unit (use ns, us, ms, s, m, h)");
    text.remove_prefix(unit->name.size());
    total += std::stold(number) * static_cast<long double>(unit->ns);
    if (total > static_cast<long double>(std::numeric_limits<int64_t>::max()))
      return bad("too large");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(total)));
}

std::string format_duration(std::chrono::nanoseconds d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  std::string out;
  if (ns < 0) {
    out = "-";
    ns = -ns;
  }
  if (ns < 1000000000LL) {
    // Sub-second: one unit, exact.
    if (ns % 1000000 == 0) return out + std::to_string(ns / 1000000) + "ms";
    if (ns % 1000 == 0) return out + std::to_string(ns / 1000) + "us";
    return out + std::to_string(ns) + "ns";
  }
  const int64_t h = ns / 3600000000000LL;
  ns %= 3600000000000LL;
  const int64_t m = ns / 60000000000LL;
  ns %= 60000000000LL;
  if (h) out += std::to_string(h) + "h";
  if (h || m) out += std::to_string(m) + "m";
  const int64_t s = ns / 1000000000LL;
  const int64_t frac = ns % 1000000000LL;
  out += std::to_string(s);
  if (frac) {
    std::string f = std::to_string(frac);
    f.insert(0, 9 - f.size(), '0');
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out + "s";
}

}  // namespace nq
