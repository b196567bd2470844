#include "agent/server/agent_service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "agent/core/spec_engine.h"
#include "agent/server/auth.h"
#include "agent/server/status.h"

namespace nq {

namespace v1 = nodequake::v1;
using google::protobuf::util::TimeUtil;

AgentService::AgentService(core::InjectionManager& manager, const Capabilities& caps,
                           NodeFacts facts, std::vector<std::string> mutating_identities,
                           AgentMetrics* metrics)
    : manager_(manager),
      caps_(caps),
      facts_(std::move(facts)),
      mutating_identities_(std::move(mutating_identities)),
      metrics_(metrics) {}

template <class F>
grpc::Status AgentService::call(grpc::ServerContext* ctx, const char* rpc, const std::string& what,
                                bool mutating, F&& body) {
  Status st = authorize(*ctx, mutating ? Access::kMutate : Access::kRead, mutating_identities_);
  if (st.ok()) st = body();
  if (st.ok()) return grpc::Status::OK;
  const Error& e = st.error();
  if (metrics_) metrics_->count_error(rpc, code_name(e.status_code()));
  if (mutating)
    spdlog::warn("{} by {} failed: {}: {}", what, peer_identity(*ctx), code_name(e.status_code()),
                 e.message());
  return to_grpc_status(e);
}

grpc::Status AgentService::Probe(grpc::ServerContext* ctx, const v1::ProbeRequest*,
                                 v1::ProbeResponse* resp) {
  return call(ctx, "Probe", "Probe", false, [&]() -> Status {
    resp->set_node(facts_.node);
    resp->set_kernel_release(facts_.kernel_release);
    resp->set_agent_version(facts_.agent_version);
    resp->mutable_runtime()->set_name(facts_.runtime_name);
    resp->mutable_runtime()->set_version(facts_.runtime_version);
    for (const auto& c : caps_.all()) {
      auto* pc = resp->add_capabilities();
      pc->set_name(c.name);
      pc->set_available(c.available);
      pc->set_detail(c.detail);
    }
    const core::NodeEngine engine = core::node_engine(core::engine_availability(caps_));
    resp->set_delay_engine(engine.name);
    resp->set_delay_engine_reason(engine.reason);
    *resp->mutable_killswitch() = manager_.killswitch();
    return ok();
  });
}

grpc::Status AgentService::ListTargets(grpc::ServerContext* ctx, const v1::ListTargetsRequest* req,
                                       v1::ListTargetsResponse* resp) {
  return call(ctx, "ListTargets", "ListTargets", false, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(*resp, manager_.list_targets(*req));
    return ok();
  });
}

grpc::Status AgentService::Apply(grpc::ServerContext* ctx, const v1::ApplyRequest* req,
                                 v1::ApplyResponse* resp) {
  return call(ctx, "Apply", "Apply " + req->id(), true, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(*resp, manager_.apply(*req));
    if (resp->created()) spdlog::info("Apply {} by {}", req->id(), peer_identity(*ctx));
    return ok();
  });
}

grpc::Status AgentService::Revert(grpc::ServerContext* ctx, const v1::RevertRequest* req,
                                  v1::RevertResponse* resp) {
  return call(ctx, "Revert", "Revert " + req->id(), true, [&]() -> Status {
    NQ_ASSIGN_OR_RETURN(*resp->mutable_injection(), manager_.revert(req->id()));
    return ok();
  });
}

grpc::Status AgentService::List(grpc::ServerContext* ctx, const v1::ListRequest*,
                                v1::ListResponse* resp) {
  return call(ctx, "List", "List", false, [&]() -> Status {
    *resp = manager_.list();
    return ok();
  });
}

grpc::Status AgentService::RenewLease(grpc::ServerContext* ctx, const v1::RenewLeaseRequest* req,
                                      v1::RenewLeaseResponse* resp) {
  return call(ctx, "RenewLease", "RenewLease " + req->holder(), true, [&]() -> Status {
    if (req->duration().seconds() < 0 || req->duration().nanos() < 0)
      return Error::invalid_argument("duration", "negative");
    NQ_ASSIGN_OR_RETURN(
        uint32_t n,
        manager_.renew_lease(req->holder(), std::chrono::nanoseconds(
                                                TimeUtil::DurationToNanoseconds(req->duration()))));
    resp->set_renewed(n);
    return ok();
  });
}

grpc::Status AgentService::RevertAll(grpc::ServerContext* ctx, const v1::RevertAllRequest* req,
                                     v1::RevertAllResponse* resp) {
  return call(ctx, "RevertAll", "RevertAll", true, [&]() -> Status {
    const std::string actor =
        req->actor().empty() ? peer_identity(*ctx) : req->actor() + " via " + peer_identity(*ctx);
    NQ_ASSIGN_OR_RETURN(*resp, manager_.revert_all(actor, req->reason()));
    return ok();
  });
}

grpc::Status AgentService::Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                                   v1::ReleaseResponse* resp) {
  return call(ctx, "Release", "Release", true, [&]() -> Status {
    const std::string actor =
        req->actor().empty() ? peer_identity(*ctx) : req->actor() + " via " + peer_identity(*ctx);
    NQ_ASSIGN_OR_RETURN(*resp->mutable_killswitch(), manager_.release(actor));
    return ok();
  });
}

}  // namespace nq
