#include "agent/stress/limits.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace nq::stress {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

template <class T>
std::optional<T> to_number(std::string_view s) {
  T v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Result<CpuLimit> parse_cpu_max(std::string_view text) {
  const std::string_view t = trim(text);
  const size_t sp = t.find(' ');
  if (sp == std::string_view::npos)
    return Error::invalid_argument("cpu.max", "\"" + std::string(t) + "\" is not \"QUOTA PERIOD\"");
  const std::string_view quota = t.substr(0, sp);
  const auto period = to_number<int64_t>(trim(t.substr(sp + 1)));
  if (!period || *period <= 0)
    return Error::invalid_argument("cpu.max", "bad period in \"" + std::string(t) + "\"");
  CpuLimit limit;
  limit.period_us = *period;
  if (quota == "max") return limit;
  const auto q = to_number<int64_t>(quota);
  if (!q || *q <= 0)
    return Error::invalid_argument("cpu.max", "bad quota in \"" + std::string(t) + "\"");
  limit.quota_us = *q;
  return limit;
}

Result<CpuLimit> parse_cfs(std::string_view quota_text, std::string_view period_text) {
  const auto period = to_number<int64_t>(trim(period_text));
  if (!period || *period <= 0)
    return Error::invalid_argument("cpu.cfs_period_us",
                                   "\"" + std::string(trim(period_text)) + "\" is not a period");
  const auto quota = to_number<int64_t>(trim(quota_text));
  if (!quota || *quota == 0 || *quota < -1)
    return Error::invalid_argument("cpu.cfs_quota_us",
                                   "\"" + std::string(trim(quota_text)) + "\" is not a quota");
  CpuLimit limit;
  limit.period_us = *period;
  if (*quota > 0) limit.quota_us = *quota;
  return limit;
}

Result<MemoryLimit> parse_memory_limit(std::string_view text) {
  const std::string_view t = trim(text);
  if (t == "max") return MemoryLimit{};
  const auto v = to_number<uint64_t>(t);
  if (!v) return Error::invalid_argument("memory limit", "\"" + std::string(t) + "\" is not bytes");
  if (*v >= (uint64_t{1} << 62)) return MemoryLimit{};
  return MemoryLimit{*v};
}

Result<uint64_t> parse_u64(std::string_view text, std::string_view what) {
  const auto v = to_number<uint64_t>(trim(text));
  if (!v)
    return Error::invalid_argument(what, "\"" + std::string(trim(text)) + "\" is not a number");
  return *v;
}

Result<uint64_t> parse_cpu_stat_usage_usec(std::string_view text) {
  constexpr std::string_view kKey = "usage_usec ";
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, nl - pos);
    if (line.substr(0, kKey.size()) == kKey) return parse_u64(line.substr(kKey.size()), "cpu.stat");
    pos = nl + 1;
  }
  return Error::invalid_argument("cpu.stat", "no usage_usec line");
}

std::optional<double> usage_rate(const UsageSample& a, const UsageSample& b) {
  const auto dt = std::chrono::duration_cast<std::chrono::nanoseconds>(b.at - a.at).count();
  if (dt <= 0 || b.usage_ns < a.usage_ns) return std::nullopt;
  return static_cast<double>(b.usage_ns - a.usage_ns) / static_cast<double>(dt);
}

double next_duty(double duty, double target_cpus, double measured_cpus, uint32_t workers,
                 double gain) {
  if (workers == 0) return 0;
  const double d = duty + gain * (target_cpus - measured_cpus) / static_cast<double>(workers);
  if (!std::isfinite(d)) return std::clamp(duty, 0.0, 1.0);
  return std::clamp(d, 0.0, 1.0);
}

uint32_t default_workers(double limit_cpus) {
  // A tiny epsilon so 2.0000001 (float noise of quota/period) stays 2.
  return std::max<uint32_t>(1, static_cast<uint32_t>(std::ceil(limit_cpus - 1e-6)));
}

std::string format_cpus(double cpus) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", std::round(cpus * 1000) / 1000);
  return std::string(buf) + (cpus > 1.0 ? " CPUs" : " CPU");
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"Ki", "Mi", "Gi", "Ti"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g%s", std::round(v * 100) / 100, kUnits[u]);
  return buf;
}

}  // namespace nq::stress
