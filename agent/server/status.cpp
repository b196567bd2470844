#include "agent/server/status.h"

namespace nq {

grpc::Status to_grpc_status(const Error& error) {
  return grpc::Status(static_cast<grpc::StatusCode>(error.status_code()), error.message());
}

Error from_grpc_status(const grpc::Status& status, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += status.error_message().empty() ? std::string(code_name(Code(status.error_code())))
                                            : status.error_message();
  return Error::status(static_cast<Code>(status.error_code()), message);
}

}  // namespace nq
