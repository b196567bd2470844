#include "agent/server/auth.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/server_context.h>

#include <algorithm>

namespace nq {
namespace {

constexpr const char* kLocal = "local";

// gRPC names a Unix-socket peer "unix:<path>" (the path is empty for the
// client's unnamed socket). TCP peers are "ipv4:..." or "ipv6:...". Abstract
// sockets ("unix-abstract:") have no filesystem permissions and are not local.
bool is_unix_peer(const std::string& peer) {
  return peer.rfind("unix:", 0) == 0;
}

PeerNames names_of(const grpc::AuthContext& auth) {
  PeerNames names;
  for (const auto& v : auth.FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME))
    names.san_dns.emplace_back(v.data(), v.size());
  for (const auto& v : auth.FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME))
    names.san_uri.emplace_back(v.data(), v.size());
  for (const auto& v : auth.FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    names.common_name.assign(v.data(), v.size());
    break;
  }
  return names;
}

// Identities of a verified TCP peer; empty when the transport did not
// authenticate it (cannot happen behind REQUIRE_AND_VERIFY, checked anyway).
std::vector<std::string> verified_identities(const grpc::ServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return {};
  return identities_of(names_of(*auth));
}

}  // namespace

std::vector<std::string> identities_of(const PeerNames& names) {
  std::vector<std::string> out;
  for (const auto& dns : names.san_dns)
    if (!dns.empty()) out.push_back(dns);
  for (const auto& uri : names.san_uri)
    if (!uri.empty()) out.push_back(uri);
  if (out.empty() && !names.common_name.empty()) out.push_back(names.common_name);
  return out;
}

std::string peer_identity(const grpc::ServerContext& ctx) {
  if (is_unix_peer(ctx.peer())) return kLocal;
  std::vector<std::string> ids = verified_identities(ctx);
  return ids.empty() ? "" : ids.front();
}

Status authorize(const grpc::ServerContext& ctx, Access access,
                 const std::vector<std::string>& mutating_identities) {
  if (is_unix_peer(ctx.peer())) return ok();
  const std::vector<std::string> ids = verified_identities(ctx);
  if (ids.empty())
    return Error::status(Code::kUnauthenticated,
                         "peer " + ctx.peer() + " presented no verified client certificate");
  if (access == Access::kRead) return ok();
  for (const auto& id : ids)
    if (std::find(mutating_identities.begin(), mutating_identities.end(), id) !=
        mutating_identities.end())
      return ok();
  return Error::status(
      Code::kPermissionDenied,
      "identity " + ids.front() + " may read but not change injections on this node");
}

}  // namespace nq
