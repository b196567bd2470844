#include "agent/server/server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/server/tls.h"
#include "common/fd.h"

namespace nq {
namespace {

namespace fs = std::filesystem;

Status make_private_dir(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode))
      return Error::failed_precondition("unix_socket_path: " + dir.string() +
                                        " is not a directory");
    return ok();
  }
  if (errno != ENOENT) return Error::from_errno(errno, "stat " + dir.string());
  if (dir.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (ec) return Error(ec, "create " + dir.parent_path().string());
  }
  // 0700: reaching the socket requires root, which is what authenticates local callers.
  if (::mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
    return Error::from_errno(errno, "mkdir " + dir.string());
  return ok();
}

// A socket file left by a crashed agent would make bind() fail with EADDRINUSE,
// so it is removed; but one that still answers belongs to a running agent.
Status remove_stale_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return ok();
    return Error::from_errno(errno, "lstat " + path);
  }
  if (!S_ISSOCK(st.st_mode))
    return Error::failed_precondition("unix_socket_path: " + path +
                                      " exists and is not a socket; not removing it");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return Error::invalid_argument("unix_socket_path", path + " is too long for a Unix socket");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return Error::from_errno(errno, "socket(AF_UNIX)");
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
    return Error::unavailable("another server is listening on " + path);
  if (::unlink(path.c_str()) < 0 && errno != ENOENT)
    return Error::from_errno(errno, "remove stale socket " + path);
  return ok();
}

Result<std::shared_ptr<grpc::ServerCredentials>> tls_credentials(const ServerOptions& o) {
  const TlsFiles files{o.tls_cert_file, o.tls_key_file, o.tls_ca_file};
  if (!complete(files))
    return Error::failed_precondition("tcp listener " + o.tcp_address +
                                      " needs tls cert, key and CA; refusing to serve plaintext");
  if (!grpc_tls13_pinned())
    return Error::failed_precondition(
        "tcp listener " + o.tcp_address +
        " needs TLS 1.3 only, but pin_grpc_tls13() was not called before gRPC started");
  NQ_TRY(check_tls_files(files));
  grpc::experimental::TlsServerCredentialsOptions tls(
      watch_tls_files(files, o.tls_refresh_seconds));
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace

GrpcServer::GrpcServer(ServerOptions options, std::unique_ptr<grpc::Server> server, int tcp_port)
    : options_(std::move(options)), server_(std::move(server)), tcp_port_(tcp_port) {}

GrpcServer::~GrpcServer() {
  shutdown(std::chrono::milliseconds(0));
}

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(const ServerOptions& options,
                                                      std::vector<grpc::Service*> services) {
  if (options.unix_socket_path.empty() && options.tcp_address.empty())
    return Error::invalid_argument("unix_socket_path",
                                   "no listener configured (and no tcp_address)");

  grpc::ServerBuilder builder;
  int tcp_port = 0;
  if (!options.tcp_address.empty()) {
    NQ_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds, tls_credentials(options));
    builder.AddListeningPort(options.tcp_address, creds, &tcp_port);
  }
  if (!options.unix_socket_path.empty()) {
    const fs::path path(options.unix_socket_path);
    if (path.has_parent_path()) NQ_TRY(make_private_dir(path.parent_path()));
    NQ_TRY(remove_stale_socket(options.unix_socket_path));
    // Plaintext is right here: the kernel delivers these bytes only between
    // processes on this node, and the file mode decides who may connect.
    builder.AddListeningPort("unix:" + options.unix_socket_path, grpc::InsecureServerCredentials());
  }
  for (grpc::Service* service : services) builder.RegisterService(service);

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  std::string where = options.unix_socket_path;
  if (!options.tcp_address.empty()) where += (where.empty() ? "" : " and ") + options.tcp_address;
  if (!server) return Error::unavailable("gRPC server could not listen on " + where);
  if (!options.tcp_address.empty() && tcp_port == 0) {
    server->Shutdown();
    return Error::unavailable("gRPC server could not bind " + options.tcp_address);
  }
  if (!options.unix_socket_path.empty()) {
    // gRPC creates the socket with the umask's mode; narrow it at once. The 0700
    // directory already keeps others out in the meantime.
    if (::chmod(options.unix_socket_path.c_str(), 0600) < 0) {
      Error err = Error::from_errno(errno, "chmod 0600 " + options.unix_socket_path);
      server->Shutdown();
      return err;
    }
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(options, std::move(server), tcp_port));
}

void GrpcServer::wait() {
  server_->Wait();
}

void GrpcServer::shutdown(std::chrono::milliseconds grace) {
  std::lock_guard lock(shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  if (!options_.unix_socket_path.empty()) ::unlink(options_.unix_socket_path.c_str());
}

}  // namespace nq
