// Per-RPC authorization of the agent's API.
//
// Local callers reach the agent over its Unix socket, whose 0600 mode in a 0700
// directory is their authentication: whoever can connect is root on the node
// (nqctl, the SRE's kill switch) and may do everything. Remote callers come over
// TCP with mTLS, identified by their verified client certificate: any of them
// may read, only the configured identities (the controller) may mutate.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace grpc {
class ServerContext;
}

namespace nq {

enum class Access { kRead, kMutate };

// Names a client certificate carries, as gRPC reports them after verification.
struct PeerNames {
  std::vector<std::string> san_dns;
  std::vector<std::string> san_uri;
  std::string common_name;
};

// The identities a certificate stands for: its DNS and URI SANs, or its CN when
// it has neither (RFC 6125 treats the CN as a fallback only). Pure.
std::vector<std::string> identities_of(const PeerNames& names);

// "local" for Unix-socket peers; else the first identity of the verified client
// certificate; "" for a peer with neither (unauthenticated). For logs and audit.
std::string peer_identity(const grpc::ServerContext& ctx);

// OK, or PermissionDenied naming the identity (Unauthenticated without one).
Status authorize(const grpc::ServerContext& ctx, Access access,
                 const std::vector<std::string>& mutating_identities);

}  // namespace nq
