// nq::Error <-> grpc::Status at the gRPC edge.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "common/error.h"

namespace nq {

// Code from Error::status_code() (numerically equal to grpc::StatusCode),
// message from Error::message(), so clients see what went wrong and where.
grpc::Status to_grpc_status(const Error& error);

// For clients: a failed call as an Error ("<context>: <grpc message>") carrying the
// call's status code. `status` must not be OK.
Error from_grpc_status(const grpc::Status& status, std::string_view context);

}  // namespace nq
