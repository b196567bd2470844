// Client channels to an agent: nqctl, tests, benchmarks and the controller.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"

namespace grpc {
class Channel;
}

namespace nq {

struct ChannelOptions {
  // "unix:///run/nodequake/agent.sock" (local, no TLS) or "host:port" (mTLS).
  std::string target;
  std::string tls_cert_file, tls_key_file, tls_ca_file;
  // Name to verify in the server certificate instead of the target's host
  // (e.g. connect to an IP, verify "nodequake-agent.<node>").
  std::string tls_server_name;
  unsigned tls_refresh_seconds = 60;
};

// A lazily connecting channel. TCP targets need all three TLS files (TLS 1.3,
// client certificate; FailedPrecondition otherwise: never plaintext) and
// pin_grpc_tls13(); the files are checked now.
Result<std::shared_ptr<grpc::Channel>> make_channel(const ChannelOptions& options);

}  // namespace nq
