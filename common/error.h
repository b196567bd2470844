// One error type for the whole project: a std::error_code (errno, a libnl NLE_*
// code, or one of our status codes) plus the context added on the way up.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace nq {

// Status codes with the numeric values of grpc::StatusCode, so the gRPC edge maps
// them 1:1 without common/ depending on gRPC.
enum class Code {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

const std::error_category& status_category() noexcept;
// libnl's NLE_* codes (positive values as libnl returns them negated).
const std::error_category& netlink_category() noexcept;

std::string_view code_name(Code code) noexcept;

class Error {
 public:
  Error(std::error_code code, std::string context) : code_(code), context_(std::move(context)) {}

  // `err` must be captured right after the failing call (pass errno, not a later read of it).
  static Error from_errno(int err, std::string_view context);
  // libnl returns -NLE_*; either sign is accepted.
  static Error from_netlink(int nle, std::string_view context);
  static Error status(Code code, std::string_view message);

  // Field-naming validation error: "field: what".
  static Error invalid_argument(std::string_view field, std::string_view what);
  static Error not_found(std::string_view what) { return status(Code::kNotFound, what); }
  static Error failed_precondition(std::string_view what) {
    return status(Code::kFailedPrecondition, what);
  }
  static Error already_exists(std::string_view what) { return status(Code::kAlreadyExists, what); }
  static Error internal(std::string_view what) { return status(Code::kInternal, what); }
  static Error unavailable(std::string_view what) { return status(Code::kUnavailable, what); }

  const std::error_code& code() const noexcept { return code_; }
  const std::string& context() const noexcept { return context_; }
  // errno value when the error came from a syscall, else 0.
  int sys_errno() const noexcept;
  // "context: description of the code" (status-category errors are their context alone).
  std::string message() const;
  // The status a client should see: status codes as they are, errno and NLE_* mapped
  // (ENOENT -> NotFound, EPERM -> PermissionDenied, EINVAL -> InvalidArgument, ...).
  Code status_code() const noexcept;

  // Prepends outer context: "outer: inner".
  Error& wrap(std::string_view outer);
  Error wrapped(std::string_view outer) && {
    wrap(outer);
    return std::move(*this);
  }

 private:
  std::error_code code_;
  std::string context_;
};

}  // namespace nq
