#include "agent/server/channel.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "agent/server/tls.h"

namespace nq {

Result<std::shared_ptr<grpc::Channel>> make_channel(const ChannelOptions& o) {
  if (o.target.empty()) return Error::invalid_argument("target", "empty");
  // Only filesystem sockets: their permissions are what protects plaintext.
  if (o.target.rfind("unix:", 0) == 0)
    return grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());

  const TlsFiles files{o.tls_cert_file, o.tls_key_file, o.tls_ca_file};
  if (!complete(files))
    return Error::failed_precondition(
        "target " + o.target + " needs tls cert, key and CA; refusing to connect in plaintext");
  if (!grpc_tls13_pinned())
    return Error::failed_precondition(
        "target " + o.target +
        " needs TLS 1.3 only, but pin_grpc_tls13() was not called before gRPC started");
  NQ_TRY(check_tls_files(files));

  grpc::experimental::TlsChannelCredentialsOptions tls;
  tls.set_certificate_provider(watch_tls_files(files, o.tls_refresh_seconds));
  tls.watch_root_certs();
  tls.watch_identity_key_cert_pairs();
  tls.set_verify_server_certs(true);
  grpc::ChannelArguments args;
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  return grpc::CreateCustomChannel(o.target, grpc::experimental::TlsCredentials(tls), args);
}

}  // namespace nq
