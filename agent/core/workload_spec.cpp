// Validation of the workload fault kinds: stress, process and I/O faults.
// Everything that can be checked without the pod is checked here; what needs
// the pod's limits (bytes over the memory limit, percent of the free space)
// is the backend's, with the same field names.
#include <string.h>

#include <cmath>
#include <cstdlib>

#include "agent/core/spec.h"
#include "nodequake/v1/agent.pb.h"

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;

std::string format_number(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// A percentage in (0, 100].
Status check_percent(double v, const std::string& field) {
  if (!std::isfinite(v) || v <= 0 || v > 100)
    return Error::invalid_argument(field, format_number(v) + " is outside (0, 100]");
  return ok();
}

// Exactly one of a size and a percentage.
Status check_size_or_percent(uint64_t bytes, double percent, const std::string& prefix) {
  if (bytes > 0 && percent != 0)
    return Error::invalid_argument(prefix, "set either bytes or percent, not both");
  if (bytes == 0 && percent == 0)
    return Error::invalid_argument(prefix, "bytes or percent required");
  if (bytes == 0) return check_percent(percent, prefix + ".percent");
  return ok();
}

Result<uint32_t> operations_mask(const google::protobuf::RepeatedField<int>& ops,
                                 const std::string& field) {
  if (ops.empty()) return kIoAllOperations;
  uint32_t mask = 0;
  for (int i = 0; i < ops.size(); ++i) {
    switch (static_cast<v1::IoOperation>(ops[i])) {
      case v1::IO_OPERATION_OPEN:
        mask |= kIoOpen;
        break;
      case v1::IO_OPERATION_READ:
        mask |= kIoRead;
        break;
      case v1::IO_OPERATION_WRITE:
        mask |= kIoWrite;
        break;
      default:
        return Error::invalid_argument(
            field + "[" + std::to_string(i) + "]",
            "unknown operation " + std::to_string(ops[i]) + " (open, read, write)");
    }
  }
  return mask;
}

}  // namespace

Result<std::string> validate_container_path(std::string_view path, std::string_view field) {
  if (path.empty()) return Error::invalid_argument(field, "required");
  if (path.front() != '/')
    return Error::invalid_argument(field, "\"" + std::string(path) + "\" is not absolute");
  if (path.size() > 4096) return Error::invalid_argument(field, "longer than 4096 characters");
  std::string out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const size_t end = std::min(path.find('/', i), path.size());
    const std::string_view part = path.substr(i, end - i);
    i = end;
    if (part.empty() || part == ".") continue;
    // ".." is refused rather than resolved: the path is later opened under
    // /proc/PID/root, and a component that climbs is either a mistake or an
    // attempt to leave the container.
    if (part == "..")
      return Error::invalid_argument(field, "\"" + std::string(path) + "\" contains \"..\"");
    if (part.find('\0') != std::string_view::npos)
      return Error::invalid_argument(field, "contains a NUL byte");
    out += '/';
    out += part;
  }
  return out.empty() ? std::string("/") : out;
}

Result<std::pair<int, std::string>> parse_errno(std::string_view value, std::string_view field) {
  if (value.empty()) return Error::invalid_argument(field, "required (an errno name such as EIO)");
  // glibc knows every name; strerrorname_np maps numbers to them, so names are
  // looked up by walking the (small) number space rather than by a copied table.
  constexpr int kMaxErrno = 4095;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    const int n = value.size() <= 4 ? std::atoi(std::string(value).c_str()) : 0;
    const char* name = n > 0 && n <= kMaxErrno ? strerrorname_np(n) : nullptr;
    if (name == nullptr)
      return Error::invalid_argument(field, std::string(value) + " is not a known errno number");
    return std::pair<int, std::string>(n, name);
  }
  for (int n = 1; n <= kMaxErrno; ++n) {
    const char* name = strerrorname_np(n);
    if (name != nullptr && value == name) return std::pair<int, std::string>(n, name);
  }
  return Error::invalid_argument(
      field, "unknown errno name \"" + std::string(value) + "\" (EIO, ENOSPC, EACCES, EPERM, ...)");
}

Result<WorkloadFault> validate_workload_spec(const v1::FaultSpec& spec) {
  WorkloadFault f;
  switch (spec.kind_case()) {
    case v1::FaultSpec::kCpuStress: {
      const auto& s = spec.cpu_stress();
      NQ_TRY(check_percent(s.load(), "spec.cpu_stress.load"));
      if (s.workers() > 1024)
        return Error::invalid_argument("spec.cpu_stress.workers",
                                       std::to_string(s.workers()) + " is more than 1024");
      f.kind = FaultKind::kCpuStress;
      f.params = CpuStress{s.load(), s.workers()};
      return f;
    }
    case v1::FaultSpec::kMemoryStress: {
      const auto& s = spec.memory_stress();
      NQ_TRY(check_size_or_percent(s.bytes(), s.percent(), "spec.memory_stress"));
      f.kind = FaultKind::kMemoryStress;
      f.params = MemoryStress{s.bytes(), s.percent()};
      return f;
    }
    case v1::FaultSpec::kContainerKill:
      f.kind = FaultKind::kContainerKill;
      f.params = ProcessFault{};
      return f;
    case v1::FaultSpec::kPodKill:
      f.kind = FaultKind::kPodKill;
      f.params = ProcessFault{};
      return f;
    case v1::FaultSpec::kPodFailure:
      f.kind = FaultKind::kPodFailure;
      f.params = ProcessFault{};
      return f;
    case v1::FaultSpec::kIoErrno: {
      const auto& s = spec.io_errno();
      IoErrno p;
      NQ_ASSIGN_OR_RETURN(p.path, validate_container_path(s.path(), "spec.io_errno.path"));
      NQ_ASSIGN_OR_RETURN(auto err, parse_errno(s.error(), "spec.io_errno.error"));
      p.error = err.first;
      p.error_name = err.second;
      p.percent = s.percent() == 0 ? 100 : s.percent();
      NQ_TRY(check_percent(p.percent, "spec.io_errno.percent"));
      NQ_ASSIGN_OR_RETURN(p.operations,
                          operations_mask(s.operations(), "spec.io_errno.operations"));
      f.kind = FaultKind::kIoErrno;
      f.params = std::move(p);
      return f;
    }
    case v1::FaultSpec::kIoThrottle: {
      const auto& s = spec.io_throttle();
      IoThrottle p;
      NQ_ASSIGN_OR_RETURN(p.path, validate_container_path(s.path(), "spec.io_throttle.path"));
      p.read_bps = s.read_bytes_per_second();
      p.write_bps = s.write_bytes_per_second();
      p.read_iops = s.read_iops();
      p.write_iops = s.write_iops();
      if (p.read_bps == 0 && p.write_bps == 0 && p.read_iops == 0 && p.write_iops == 0)
        return Error::invalid_argument("spec.io_throttle",
                                       "set at least one of read_bytes_per_second, "
                                       "write_bytes_per_second, read_iops, write_iops");
      f.kind = FaultKind::kIoThrottle;
      f.params = std::move(p);
      return f;
    }
    case v1::FaultSpec::kDiskFill: {
      const auto& s = spec.disk_fill();
      DiskFill p;
      NQ_ASSIGN_OR_RETURN(p.path, validate_container_path(s.path(), "spec.disk_fill.path"));
      NQ_TRY(check_size_or_percent(s.bytes(), s.percent(), "spec.disk_fill"));
      p.bytes = s.bytes();
      p.percent = s.percent();
      f.kind = FaultKind::kDiskFill;
      f.params = std::move(p);
      return f;
    }
    default:
      break;
  }
  return Error::invalid_argument("spec", "not a workload fault");
}

}  // namespace nq::core
