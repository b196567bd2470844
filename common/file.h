// Whole-file reads and writes with errno kept, for the small files of procfs,
// cgroupfs, sysfs and our own state (which report size 0 or change under us,
// so they are read until EOF rather than by their size).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq {

Result<std::string> read_file(const std::filesystem::path& path);

// Writes all of `data` to `fd`, retrying short writes and EINTR; `what` names
// the destination in the error.
Status write_all(int fd, std::string_view data, std::string_view what);

// One write() of `value` to an existing file: a cgroupfs/sysfs knob takes a
// value per write, so it must not be split.
Status write_knob(const std::filesystem::path& file, std::string_view value);

}  // namespace nq
