#include "bench/proc_memory.h"

#include <cerrno>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace nq::bench {
namespace {

// "VmRSS:\t   11472 kB" -> 11472 (the unit is always kB in this file).
std::optional<uint64_t> field(std::string_view text, std::string_view name) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.starts_with(name) || line.size() <= name.size() || line[name.size()] != ':') continue;
    line.remove_prefix(name.size() + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
    if (ec != std::errc() || end == line.data()) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

}  // namespace

Result<ProcMemory> parse_proc_status(std::string_view text) {
  ProcMemory m;
  auto rss = field(text, "VmRSS");
  if (!rss) return Error::invalid_argument("VmRSS", "missing from /proc/PID/status");
  auto threads = field(text, "Threads");
  if (!threads) return Error::invalid_argument("Threads", "missing from /proc/PID/status");
  m.rss_kib = *rss;
  m.threads = static_cast<int>(*threads);
  m.anon_kib = field(text, "RssAnon").value_or(0);
  m.file_kib = field(text, "RssFile").value_or(0);
  m.shmem_kib = field(text, "RssShmem").value_or(0);
  m.hwm_kib = field(text, "VmHWM").value_or(0);
  return m;
}

Result<ProcMemory> read_proc_memory(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  if (!in) return Error::from_errno(errno, "open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  auto m = parse_proc_status(ss.str());
  if (!m.ok()) return std::move(m).error().wrapped(path);
  return m;
}

}  // namespace nq::bench
