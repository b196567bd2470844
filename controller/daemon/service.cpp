#include "controller/daemon/service.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "agent/server/auth.h"
#include "agent/server/status.h"
#include "controller/audit/audit.h"

namespace nq::controller {

using google::protobuf::util::TimeUtil;

template <class F>
grpc::Status ControllerService::call(grpc::ServerContext* ctx, Role required, const char* rpc,
                                     F&& body) {
  std::string authorization;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end())
    authorization.assign(it->second.data(), it->second.size());
  auto caller = authenticate(policy_, authorization, peer_identity(*ctx));
  if (!caller.ok()) {
    spdlog::warn("{} from {}: {}", rpc, ctx->peer(), caller.error().message());
    return to_grpc_status(caller.error());
  }
  if (Status st = authorize(*caller, required, rpc); !st.ok()) {
    spdlog::warn("{}: {}", rpc, st.error().message());
    return to_grpc_status(st.error());
  }
  Status st = body(*caller);
  if (!st.ok()) return to_grpc_status(st.error());
  return grpc::Status::OK;
}

grpc::Status ControllerService::Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                                       v1::SubmitResponse* resp) {
  return call(ctx, Role::kOperator, "Submit", [&](const Caller& caller) -> Status {
    NQ_ASSIGN_OR_RETURN(
        *resp->mutable_experiment(),
        manager_.submit(req->yaml(), req->file().empty() ? "-" : req->file(), req->document(),
                        req->seed(), req->force(), caller.identity));
    spdlog::info("{} submitted {} (seed {})", caller.identity, resp->experiment().id(),
                 resp->experiment().seed());
    return ok();
  });
}

grpc::Status ControllerService::Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                                    v1::GetResponse* resp) {
  return call(ctx, Role::kViewer, "Get", [&](const Caller&) -> Status {
    if (req->id().empty()) {
      for (auto& s : manager_.list()) *resp->add_experiments() = std::move(s);
      return ok();
    }
    NQ_ASSIGN_OR_RETURN(*resp->add_experiments(), manager_.get(req->id()));
    return ok();
  });
}

grpc::Status ControllerService::Abort(grpc::ServerContext* ctx, const v1::AbortRequest* req,
                                      v1::AbortResponse* resp) {
  return call(ctx, Role::kOperator, "Abort", [&](const Caller& caller) -> Status {
    NQ_ASSIGN_OR_RETURN(*resp->mutable_experiment(),
                        manager_.abort(req->id(), caller.identity, req->reason()));
    return ok();
  });
}

grpc::Status ControllerService::Audit(grpc::ServerContext* ctx, const v1::AuditRequest* req,
                                      v1::AuditResponse* resp) {
  return call(ctx, Role::kViewer, "Audit", [&](const Caller&) -> Status {
    audit::Filter filter;
    if (req->has_since())
      filter.since = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(
              std::chrono::nanoseconds(TimeUtil::TimestampToNanoseconds(req->since()))));
    if (!req->experiment().empty()) filter.experiment = req->experiment();
    NQ_ASSIGN_OR_RETURN(auto events, audit::read_log(audit_file_, filter));
    for (const auto& e : events) resp->add_lines(audit::to_json_line(e));
    return ok();
  });
}

grpc::Status ControllerService::Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                                       v1::ReportResponse* resp) {
  return call(ctx, Role::kViewer, "Report", [&](const Caller&) -> Status {
    NQ_ASSIGN_OR_RETURN(auto report, manager_.report(req->id()));
    resp->set_json(report.first.dump(2));
    resp->set_table(report.second);
    return ok();
  });
}

}  // namespace nq::controller
