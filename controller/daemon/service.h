// The gRPC face of the controller (proto/nodequake/v1/controller.proto):
// authentication and role check for every call (access.h), then the
// experiment manager or the audit log, errors mapped to status codes with
// their messages.
#pragma once

#include <filesystem>
#include <string>

#include "controller/daemon/access.h"
#include "controller/daemon/manager.h"
#include "nodequake/v1/controller.grpc.pb.h"

namespace nq::controller {

class ControllerService final : public nodequake::v1::Controller::Service {
 public:
  ControllerService(ExperimentManager& manager, AccessPolicy policy,
                    std::filesystem::path audit_file)
      : manager_(manager), policy_(std::move(policy)), audit_file_(std::move(audit_file)) {}

  grpc::Status Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* req,
                      v1::SubmitResponse* resp) override;
  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                   v1::GetResponse* resp) override;
  grpc::Status Abort(grpc::ServerContext* ctx, const v1::AbortRequest* req,
                     v1::AbortResponse* resp) override;
  grpc::Status Audit(grpc::ServerContext* ctx, const v1::AuditRequest* req,
                     v1::AuditResponse* resp) override;
  grpc::Status Report(grpc::ServerContext* ctx, const v1::ReportRequest* req,
                      v1::ReportResponse* resp) override;

 private:
  // Authenticates and authorizes, then runs body(caller).
  template <class F>
  grpc::Status call(grpc::ServerContext* ctx, Role required, const char* rpc, F&& body);

  ExperimentManager& manager_;
  const AccessPolicy policy_;
  const std::filesystem::path audit_file_;
};

}  // namespace nq::controller
