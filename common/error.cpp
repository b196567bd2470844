#include "common/error.h"

#include <netlink/errno.h>

#include <cerrno>
#include <cstring>

namespace nq {
namespace {

class StatusCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "nodequake"; }
  std::string message(int ev) const override { return std::string(code_name(Code(ev))); }
};

class NetlinkCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "netlink"; }
  std::string message(int ev) const override { return nl_geterror(ev); }
};

Code errno_to_code(int err) noexcept {
  switch (err) {
    case 0:
      return Code::kOk;
    case EINVAL:
    case ERANGE:
    case E2BIG:
      return Code::kInvalidArgument;
    case ENOENT:
    case ESRCH:
    case ENODEV:
    case ENXIO:
      return Code::kNotFound;
    case EEXIST:
      return Code::kAlreadyExists;
    case EPERM:
    case EACCES:
      return Code::kPermissionDenied;
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
      return Code::kResourceExhausted;
    case EOPNOTSUPP:
    case ENOSYS:
    case EPROTONOSUPPORT:
      return Code::kFailedPrecondition;
    case EBUSY:
    case EAGAIN:
    case ECONNREFUSED:
      return Code::kUnavailable;
    case ETIMEDOUT:
      return Code::kDeadlineExceeded;
    default:
      return Code::kInternal;
  }
}

Code netlink_to_code(int nle) noexcept {
  switch (nle) {
    case NLE_SUCCESS:
      return Code::kOk;
    case NLE_INVAL:
    case NLE_RANGE:
    case NLE_MSGSIZE:
      return Code::kInvalidArgument;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
      return Code::kNotFound;
    case NLE_EXIST:
      return Code::kAlreadyExists;
    case NLE_PERM:
    case NLE_NOACCESS:
      return Code::kPermissionDenied;
    case NLE_NOMEM:
      return Code::kResourceExhausted;
    case NLE_OPNOTSUPP:
    case NLE_AF_NOSUPPORT:
      return Code::kFailedPrecondition;
    case NLE_BUSY:
    case NLE_AGAIN:
      return Code::kUnavailable;
    default:
      return Code::kInternal;
  }
}

}  // namespace

const std::error_category& status_category() noexcept {
  static const StatusCategory category;
  return category;
}

const std::error_category& netlink_category() noexcept {
  static const NetlinkCategory category;
  return category;
}

std::string_view code_name(Code code) noexcept {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kCancelled:
      return "CANCELLED";
    case Code::kUnknown:
      return "UNKNOWN";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kAlreadyExists:
      return "ALREADY_EXISTS";
    case Code::kPermissionDenied:
      return "PERMISSION_DENIED";
    case Code::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Code::kAborted:
      return "ABORTED";
    case Code::kOutOfRange:
      return "OUT_OF_RANGE";
    case Code::kUnimplemented:
      return "UNIMPLEMENTED";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kDataLoss:
      return "DATA_LOSS";
    case Code::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Error Error::from_errno(int err, std::string_view context) {
  return Error(std::error_code(err, std::system_category()), std::string(context));
}

Error Error::from_netlink(int nle, std::string_view context) {
  return Error(std::error_code(nle < 0 ? -nle : nle, netlink_category()), std::string(context));
}

Error Error::status(Code code, std::string_view message) {
  return Error(std::error_code(static_cast<int>(code), status_category()), std::string(message));
}

Error Error::invalid_argument(std::string_view field, std::string_view what) {
  std::string msg(field);
  msg += ": ";
  msg += what;
  return status(Code::kInvalidArgument, msg);
}

int Error::sys_errno() const noexcept {
  return code_.category() == std::system_category() ? code_.value() : 0;
}

std::string Error::message() const {
  if (code_.category() == status_category()) return context_;
  if (context_.empty()) return code_.message();
  return context_ + ": " + code_.message();
}

Code Error::status_code() const noexcept {
  if (code_.category() == status_category()) return static_cast<Code>(code_.value());
  if (code_.category() == netlink_category()) return netlink_to_code(code_.value());
  if (code_.category() == std::system_category() || code_.category() == std::generic_category())
    return errno_to_code(code_.value());
  return Code::kInternal;
}

Error& Error::wrap(std::string_view outer) {
  if (context_.empty()) {
    context_ = std::string(outer);
  } else {
    std::string joined(outer);
    joined += ": ";
    joined += context_;
    context_ = std::move(joined);
  }
  return *this;
}

}  // namespace nq
