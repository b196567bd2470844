// The gRPC face of the agent: authorization, then the injection manager, then
// errors mapped to status codes with their messages.
#pragma once

#include <string>
#include <vector>

#include "agent/caps/probe.h"
#include "agent/core/manager.h"
#include "agent/metrics/metrics.h"
#include "nodequake/v1/agent.grpc.pb.h"

namespace nq {

struct NodeFacts {
  std::string node;
  std::string kernel_release;
  std::string agent_version;
  std::string runtime_name;
  std::string runtime_version;
};

class AgentService final : public nodequake::v1::Agent::Service {
 public:
  AgentService(core::InjectionManager& manager, const Capabilities& caps, NodeFacts facts,
               std::vector<std::string> mutating_identities, AgentMetrics* metrics);

  grpc::Status Probe(grpc::ServerContext* ctx, const nodequake::v1::ProbeRequest* req,
                     nodequake::v1::ProbeResponse* resp) override;
  grpc::Status ListTargets(grpc::ServerContext* ctx, const nodequake::v1::ListTargetsRequest* req,
                           nodequake::v1::ListTargetsResponse* resp) override;
  grpc::Status Apply(grpc::ServerContext* ctx, const nodequake::v1::ApplyRequest* req,
                     nodequake::v1::ApplyResponse* resp) override;
  grpc::Status Revert(grpc::ServerContext* ctx, const nodequake::v1::RevertRequest* req,
                      nodequake::v1::RevertResponse* resp) override;
  grpc::Status List(grpc::ServerContext* ctx, const nodequake::v1::ListRequest* req,
                    nodequake::v1::ListResponse* resp) override;
  grpc::Status RenewLease(grpc::ServerContext* ctx, const nodequake::v1::RenewLeaseRequest* req,
                          nodequake::v1::RenewLeaseResponse* resp) override;
  grpc::Status RevertAll(grpc::ServerContext* ctx, const nodequake::v1::RevertAllRequest* req,
                         nodequake::v1::RevertAllResponse* resp) override;
  grpc::Status Release(grpc::ServerContext* ctx, const nodequake::v1::ReleaseRequest* req,
                       nodequake::v1::ReleaseResponse* resp) override;

 private:
  // Authorizes, runs `body`, maps and counts its error.
  // `what` names the request in logs ("Apply demo-1").
  template <class F>
  grpc::Status call(grpc::ServerContext* ctx, const char* rpc, const std::string& what,
                    bool mutating, F&& body);

  core::InjectionManager& manager_;
  const Capabilities& caps_;
  NodeFacts facts_;
  std::vector<std::string> mutating_identities_;
  AgentMetrics* metrics_;
};

}  // namespace nq
