// Pure planning for io_errno: a validated IoErrno spec becomes the value the
// ioerrno BPF program reads (ebpf/ioerrno.h). No kernel access; unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/spec.h"
#include "common/result.h"
#include "ioerrno.h"

namespace nq::io {

// The program's path prefix for a container path: normalized, without a
// trailing '/', and "" for "/" (which matches every path). INVALID_ARGUMENT
// naming spec.io_errno.path when it is not an absolute, clean path or longer
// than the program can compare (NQ_IO_PREFIX_MAX - 1 bytes).
Result<std::string> normalize_prefix(std::string_view path);

// percent in (0, 100] -> the u32-scale threshold of nq_io_config: a call
// fails when a uniform u32 is below it. 100 (and anything above) is
// NQ_IO_THRESHOLD_ALWAYS; the smallest positive percent still fails some.
Result<uint64_t> percent_threshold(double percent);

// IoOperationBit mask -> NQ_IO_OP_* (INVALID_ARGUMENT for 0 or unknown bits).
Result<uint32_t> ops_mask(uint32_t operations);

// The whole map value; counters start at 0.
Result<nq_io_config> build_config(const core::IoErrno& spec, uint32_t generation);

// "open,read" for logs and Details.
std::string ops_names(uint32_t ops);

}  // namespace nq::io
