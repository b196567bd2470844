// Block I/O throttles in a cgroup: io.max (v2) or blkio.throttle.* (v1).
// Pure parsers and plans (what to write, and what writes restore the
// snapshot taken before), then a thin executor on cgroupfs.
//
// Kernel facts this relies on:
// - Both versions refuse a partition (blkcg_conf_open_bdev: ENODEV), so the
//   limit goes on the whole disk (whole_disk()).
// - v1 throttles only I/O the cgroup's tasks submit themselves: direct I/O and
//   reads; buffered writes are written back by flusher threads outside the
//   cgroup and escape the limit. v2 attributes writeback to the cgroup.
// - v1: writing "MAJ:MIN 0" removes a rule. v2: "MAJ:MIN rbps=max ..." with
//   every key at max removes the device's line; keys left out keep their value.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/process/freezer.h"
#include "common/result.h"

namespace nq::disk {

using process::CgroupVersion;

struct DevNum {
  uint32_t major = 0;
  uint32_t minor = 0;
  std::string str() const { return std::to_string(major) + ":" + std::to_string(minor); }
  bool operator==(const DevNum&) const = default;
};
DevNum from_dev_t(dev_t d);
// "8:0" (a trailing newline is accepted, as sysfs "dev" files have one).
Result<DevNum> parse_devnum(std::string_view text);

struct ThrottleLimits {  // 0: leave that limit as it is
  uint64_t read_bps = 0;
  uint64_t write_bps = 0;
  uint64_t read_iops = 0;
  uint64_t write_iops = 0;
};

// v1 knob files, in the order they are written.
inline constexpr std::string_view kV1ReadBps = "blkio.throttle.read_bps_device";
inline constexpr std::string_view kV1WriteBps = "blkio.throttle.write_bps_device";
inline constexpr std::string_view kV1ReadIops = "blkio.throttle.read_iops_device";
inline constexpr std::string_view kV1WriteIops = "blkio.throttle.write_iops_device";
inline constexpr std::string_view kIoMax = "io.max";

// io.max text -> the line of each device, keyed "MAJ:MIN".
Result<std::map<std::string, std::string>> parse_io_max(std::string_view text);
// A blkio.throttle.*_device text -> value per "MAJ:MIN".
Result<std::map<std::string, uint64_t>> parse_blkio_throttle(std::string_view text,
                                                             std::string_view knob);
// "8:0 wbps=1048576 riops=100" with only the limits that are set.
std::string format_io_max(const DevNum& dev, const ThrottleLimits& limits);

struct KnobWrite {
  std::string knob;  // file name in the cgroup directory
  std::string value;
  bool operator==(const KnobWrite&) const = default;
};

// The knobs a throttle touches (what to snapshot first).
std::vector<std::string> knobs_for(CgroupVersion v, const ThrottleLimits& limits);
// Previous value per knob for `dev`: the kernel's line, "" when the device had
// no entry. `knob_text` maps knob -> the file's content.
Result<std::map<std::string, std::string>> snapshot_from(
    CgroupVersion v, const DevNum& dev, const std::map<std::string, std::string>& knob_text);
std::vector<KnobWrite> plan_throttle(CgroupVersion v, const DevNum& dev,
                                     const ThrottleLimits& limits);
// Writes that put back exactly `previous` (snapshot_from's result).
std::vector<KnobWrite> plan_restore(CgroupVersion v, const DevNum& dev,
                                    const std::map<std::string, std::string>& previous);

// --- executor ---

// The whole disk behind a block device: itself, or its parent when sysfs says
// it is a partition (/sys/dev/block/M:m/partition exists).
Result<DevNum> whole_disk(const DevNum& dev, const std::filesystem::path& sys = "/sys");
Result<std::map<std::string, std::string>> read_snapshot(const std::filesystem::path& cgroup_dir,
                                                         CgroupVersion v, const DevNum& dev,
                                                         const ThrottleLimits& limits);
// In order; the first failing write's error names the knob.
Status apply_writes(const std::filesystem::path& cgroup_dir, const std::vector<KnobWrite>& writes);

}  // namespace nq::disk
