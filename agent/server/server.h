// The agent's gRPC server: a Unix socket for local callers and, optionally, a
// TCP listener that speaks mTLS only.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace nq {

struct ServerOptions {
  // e.g. /run/nodequake/agent.sock; "" = no Unix listener.
  std::string unix_socket_path;
  // "" = no TCP listener; "0.0.0.0:9443", "127.0.0.1:0" (any free port).
  std::string tcp_address;
  std::string tls_cert_file, tls_key_file, tls_ca_file;
  // Client-certificate identities allowed to mutate (see auth.h).
  std::vector<std::string> mutating_identities;
  // How often the TLS files are re-read, so rotated certificates take effect.
  unsigned tls_refresh_seconds = 60;
};

class GrpcServer {
 public:
  // Listens on the configured endpoints and serves `services` (which must outlive
  // the server). FailedPrecondition for TCP without all three TLS files, or
  // without pin_grpc_tls13(); InvalidArgument naming the option for a file that
  // does not load; Unavailable when another server answers on the Unix socket.
  static Result<std::unique_ptr<GrpcServer>> start(const ServerOptions& options,
                                                   std::vector<grpc::Service*> services);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The TCP port actually bound (also for ":0"); 0 without a TCP listener.
  int tcp_port() const noexcept { return tcp_port_; }
  const ServerOptions& options() const noexcept { return options_; }

  // Blocks until shutdown() completes (from another thread).
  void wait();
  // Stops accepting calls, gives running ones `grace`, then cancels them and
  // removes the socket file. Idempotent and safe from several threads.
  void shutdown(std::chrono::milliseconds grace);

 private:
  GrpcServer(ServerOptions options, std::unique_ptr<grpc::Server> server, int tcp_port);

  ServerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  int tcp_port_ = 0;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;
};

}  // namespace nq
