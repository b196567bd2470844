#include "agent/disk/throttle.h"

#include <sys/sysmacros.h>

#include <charconv>
#include <optional>

#include "common/file.h"

namespace nq::disk {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

template <class F>
void for_each_line(std::string_view text, F&& f) {
  size_t n = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++n;
    if (!line.empty()) f(line, n);
  }
}

template <class T>
bool parse_uint(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

DevNum from_dev_t(dev_t d) {
  return {static_cast<uint32_t>(::major(d)), static_cast<uint32_t>(::minor(d))};
}

Result<DevNum> parse_devnum(std::string_view text) {
  const std::string_view s = trim(text);
  const size_t colon = s.find(':');
  DevNum d;
  if (colon == std::string_view::npos || !parse_uint(s.substr(0, colon), d.major) ||
      !parse_uint(s.substr(colon + 1), d.minor))
    return Error::invalid_argument("device", "\"" + std::string(s) + "\" is not MAJOR:MINOR");
  return d;
}

Result<std::map<std::string, std::string>> parse_io_max(std::string_view text) {
  std::map<std::string, std::string> out;
  std::optional<Error> err;
  for_each_line(text, [&](std::string_view line, size_t n) {
    const size_t sp = line.find(' ');
    auto dev = parse_devnum(line.substr(0, sp));
    if (!dev.ok()) {
      if (!err)
        err = Error::invalid_argument(
            "io.max", "line " + std::to_string(n) + " \"" + std::string(line) + "\" has no device");
      return;
    }
    out[dev->str()] = std::string(line);
  });
  if (err) return *err;
  return out;
}

Result<std::map<std::string, uint64_t>> parse_blkio_throttle(std::string_view text,
                                                             std::string_view knob) {
  std::map<std::string, uint64_t> out;
  std::optional<Error> err;
  for_each_line(text, [&](std::string_view line, size_t n) {
    const size_t sp = line.find(' ');
    auto dev = parse_devnum(line.substr(0, sp));
    uint64_t v = 0;
    if (!dev.ok() || sp == std::string_view::npos || !parse_uint(trim(line.substr(sp + 1)), v)) {
      if (!err)
        err = Error::invalid_argument(knob, "line " + std::to_string(n) + " \"" +
                                                std::string(line) + "\" is not \"MAJ:MIN VALUE\"");
      return;
    }
    out[dev->str()] = v;
  });
  if (err) return *err;
  return out;
}

std::string format_io_max(const DevNum& dev, const ThrottleLimits& l) {
  std::string s = dev.str();
  if (l.read_bps) s += " rbps=" + std::to_string(l.read_bps);
  if (l.write_bps) s += " wbps=" + std::to_string(l.write_bps);
  if (l.read_iops) s += " riops=" + std::to_string(l.read_iops);
  if (l.write_iops) s += " wiops=" + std::to_string(l.write_iops);
  return s;
}

std::vector<std::string> knobs_for(CgroupVersion v, const ThrottleLimits& l) {
  if (v == CgroupVersion::kV2) return {std::string(kIoMax)};
  std::vector<std::string> k;
  if (l.read_bps) k.emplace_back(kV1ReadBps);
  if (l.write_bps) k.emplace_back(kV1WriteBps);
  if (l.read_iops) k.emplace_back(kV1ReadIops);
  if (l.write_iops) k.emplace_back(kV1WriteIops);
  return k;
}

Result<std::map<std::string, std::string>> snapshot_from(
    CgroupVersion v, const DevNum& dev, const std::map<std::string, std::string>& knob_text) {
  std::map<std::string, std::string> prev;
  for (const auto& [knob, text] : knob_text) {
    if (v == CgroupVersion::kV2) {
      NQ_ASSIGN_OR_RETURN(auto lines, parse_io_max(text));
      auto it = lines.find(dev.str());
      prev[knob] = it == lines.end() ? "" : it->second;
    } else {
      NQ_ASSIGN_OR_RETURN(auto values, parse_blkio_throttle(text, knob));
      auto it = values.find(dev.str());
      prev[knob] = it == values.end() ? "" : dev.str() + " " + std::to_string(it->second);
    }
  }
  return prev;
}

std::vector<KnobWrite> plan_throttle(CgroupVersion v, const DevNum& dev, const ThrottleLimits& l) {
  if (v == CgroupVersion::kV2) return {{std::string(kIoMax), format_io_max(dev, l)}};
  std::vector<KnobWrite> w;
  const auto add = [&](std::string_view knob, uint64_t value) {
    if (value) w.push_back({std::string(knob), dev.str() + " " + std::to_string(value)});
  };
  add(kV1ReadBps, l.read_bps);
  add(kV1WriteBps, l.write_bps);
  add(kV1ReadIops, l.read_iops);
  add(kV1WriteIops, l.write_iops);
  return w;
}

std::vector<KnobWrite> plan_restore(CgroupVersion v, const DevNum& dev,
                                    const std::map<std::string, std::string>& previous) {
  std::vector<KnobWrite> w;
  for (const auto& [knob, line] : previous) {
    if (!line.empty()) {
      w.push_back({knob, line});  // the kernel's own line is valid input for the knob
    } else if (v == CgroupVersion::kV2) {
      w.push_back({knob, dev.str() + " rbps=max wbps=max riops=max wiops=max"});
    } else {
      w.push_back({knob, dev.str() + " 0"});
    }
  }
  return w;
}

Result<DevNum> whole_disk(const DevNum& dev, const std::filesystem::path& sys) {
  const auto link = sys / "dev/block" / dev.str();
  std::error_code ec;
  if (!std::filesystem::exists(link / "partition", ec)) {
    if (!std::filesystem::exists(link, ec))
      return Error::not_found("block device " + dev.str() + " is not in " +
                              (sys / "dev/block").string());
    return dev;
  }
  // /sys/dev/block/8:1 -> ../../devices/.../block/sda/sda1: the disk is the parent.
  const auto real = std::filesystem::canonical(link, ec);
  if (ec) return Error::from_errno(ec.value(), "resolve " + link.string());
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(real.parent_path() / "dev"));
  return parse_devnum(text);
}

Result<std::map<std::string, std::string>> read_snapshot(const std::filesystem::path& cgroup_dir,
                                                         CgroupVersion v, const DevNum& dev,
                                                         const ThrottleLimits& limits) {
  std::map<std::string, std::string> text;
  for (const std::string& knob : knobs_for(v, limits)) {
    NQ_ASSIGN_OR_RETURN(text[knob], read_file(cgroup_dir / knob));
  }
  return snapshot_from(v, dev, text);
}

Status apply_writes(const std::filesystem::path& cgroup_dir, const std::vector<KnobWrite>& writes) {
  for (const KnobWrite& w : writes) NQ_TRY(write_knob(cgroup_dir / w.knob, w.value));
  return ok();
}

}  // namespace nq::disk
