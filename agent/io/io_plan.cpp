#include "agent/io/io_plan.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <utility>

namespace nq::io {

// The API's bits are the program's bits; a mismatch would silently fault
// the wrong operation.
static_assert(core::kIoOpen == NQ_IO_OP_OPEN && core::kIoRead == NQ_IO_OP_READ &&
              core::kIoWrite == NQ_IO_OP_WRITE);

// Layout the BPF side sees (clang -target bpf): pinned here so that a change
// to ebpf/ioerrno.h on one side only fails the build.
static_assert(sizeof(nq_io_config) == 40 + NQ_IO_PREFIX_MAX);
static_assert(offsetof(nq_io_config, generation) == 16);
static_assert(offsetof(nq_io_config, matched) == 24);
static_assert(offsetof(nq_io_config, prefix) == 40);
static_assert(sizeof(nq_io_file) == 16);

namespace {
constexpr std::string_view kPathField = "spec.io_errno.path";
}

Result<std::string> normalize_prefix(std::string_view path) {
  auto normalized = core::validate_container_path(path, kPathField);
  if (!normalized.ok()) return std::move(normalized).error();
  std::string p = std::move(normalized).value();
  // Only "/" normalizes to one byte. (Compared by size: GCC 12 warns of a
  // spurious maybe-uninitialized read in the string compare here.)
  if (p.size() == 1) return std::string();
  if (p.size() >= NQ_IO_PREFIX_MAX)
    return Error::invalid_argument(
        kPathField, std::to_string(p.size()) + " bytes long; the BPF program compares at most " +
                        std::to_string(NQ_IO_PREFIX_MAX - 1));
  return p;
}

Result<uint64_t> percent_threshold(double percent) {
  if (!std::isfinite(percent) || percent <= 0)
    return Error::invalid_argument("spec.io_errno.percent", "must be in (0, 100]");
  if (percent >= 100) return uint64_t{NQ_IO_THRESHOLD_ALWAYS};
  const double t = std::floor(percent / 100.0 * static_cast<double>(NQ_IO_THRESHOLD_ALWAYS));
  // A tiny percent must not round to "never": that would be a silent no-op.
  return std::max<uint64_t>(1, static_cast<uint64_t>(t));
}

Result<uint32_t> ops_mask(uint32_t operations) {
  if (operations == 0)
    return Error::invalid_argument("spec.io_errno.operations", "no operation selected");
  if ((operations & ~core::kIoAllOperations) != 0)
    return Error::invalid_argument("spec.io_errno.operations",
                                   "unknown operation bits " + std::to_string(operations));
  return operations;
}

Result<nq_io_config> build_config(const core::IoErrno& spec, uint32_t generation) {
  nq_io_config cfg{};
  NQ_ASSIGN_OR_RETURN(std::string prefix, normalize_prefix(spec.path));
  NQ_ASSIGN_OR_RETURN(cfg.threshold, percent_threshold(spec.percent));
  NQ_ASSIGN_OR_RETURN(cfg.ops, ops_mask(spec.operations));
  if (spec.error <= 0 || spec.error > 4095)
    return Error::invalid_argument("spec.io_errno.error",
                                   std::to_string(spec.error) + " is not an errno value");
  cfg.error = static_cast<uint32_t>(spec.error);
  cfg.generation = generation;
  cfg.prefix_len = static_cast<uint32_t>(prefix.size());
  std::memcpy(cfg.prefix, prefix.data(), prefix.size());
  return cfg;
}

std::string ops_names(uint32_t ops) {
  std::string out;
  for (auto [bit, name] : {std::pair{NQ_IO_OP_OPEN, "open"}, std::pair{NQ_IO_OP_READ, "read"},
                           std::pair{NQ_IO_OP_WRITE, "write"}}) {
    if ((ops & bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

}  // namespace nq::io
