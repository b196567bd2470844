#include "bench/agent_path.h"

#include <grpcpp/grpcpp.h>

#include "agent/server/status.h"

namespace nq::bench {
namespace {

namespace v1 = nodequake::v1;

// Generous: a deadline only stops a hung agent from hanging the benchmark.
constexpr auto kRpcDeadline = std::chrono::seconds(10);

v1::ApplyRequest base_request(const std::string& id, const BenchPod& target,
                              std::chrono::seconds ttl) {
  v1::ApplyRequest req;
  req.set_id(id);
  req.mutable_target()->mutable_pod()->set_namespace_(target.namespace_name);
  req.mutable_target()->mutable_pod()->set_name(target.name);
  req.mutable_ttl()->set_seconds(ttl.count());
  return req;
}

void set_path(v1::NetworkPath* path) {
  path->set_direction(v1::DIRECTION_TO);
  path->set_interface("eth0");
}

}  // namespace

v1::ApplyRequest partition_request(const std::string& id, const BenchPod& target,
                                   const std::string& remote_ip, std::chrono::seconds ttl) {
  v1::ApplyRequest req = base_request(id, target, ttl);
  v1::NetworkPath* path = req.mutable_spec()->mutable_partition()->mutable_path();
  set_path(path);
  path->mutable_scope()->add_remote_cidrs(remote_ip + "/32");
  return req;
}

v1::ApplyRequest bandwidth_request(const std::string& id, const BenchPod& target, uint64_t rate_bps,
                                   std::chrono::seconds ttl) {
  v1::ApplyRequest req = base_request(id, target, ttl);
  v1::BandwidthFault* bw = req.mutable_spec()->mutable_bandwidth();
  set_path(bw->mutable_path());
  bw->set_rate_bps(rate_bps);
  return req;
}

Result<std::chrono::nanoseconds> timed_apply(v1::Agent::Stub& stub,
                                             const v1::ApplyRequest& request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcDeadline);
  v1::ApplyResponse resp;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub.Apply(&ctx, request, &resp);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (!status.ok()) return from_grpc_status(status, "Apply " + request.id());
  if (!resp.created() || resp.injection().state() != v1::INJECTION_STATE_ACTIVE)
    return Error::internal("Apply " + request.id() +
                           ": the agent did not create an active injection");
  return elapsed;
}

Result<std::chrono::nanoseconds> timed_revert(v1::Agent::Stub& stub, const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + kRpcDeadline);
  v1::RevertRequest req;
  req.set_id(id);
  v1::RevertResponse resp;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = stub.Revert(&ctx, req, &resp);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  if (!status.ok()) return from_grpc_status(status, "Revert " + id);
  if (resp.injection().state() != v1::INJECTION_STATE_REVERTED)
    return Error::internal("Revert " + id + ": the injection is not reported reverted");
  return elapsed;
}

}  // namespace nq::bench
