#include "agent/runtime/cri/cri_runtime.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>

#include "agent/runtime/cgroup.h"
#include "agent/runtime/cri/fan_out.h"
#include "agent/runtime/cri/socket.h"
#include "agent/server/status.h"

namespace nq::cri {

Result<std::unique_ptr<CriRuntime>> CriRuntime::connect(Options opts) {
  std::filesystem::path socket = opts.socket;
  if (socket.empty()) {
    NQ_ASSIGN_OR_RETURN(socket, detect_socket(opts.roots.host_root));
  }
  // Our own channel rather than make_channel(): a runtime restart (a node
  // upgrade, a crash) drops the connection, and gRPC's default reconnect
  // backoff grows to two minutes, during which every resolve would fail fast
  // although the runtime is back. Capped at a second it reconnects promptly.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel("unix://" + socket.string(),
                                           grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<CriRuntime> rt(new CriRuntime(std::move(opts), socket, std::move(channel)));

  criv1::VersionRequest req;
  req.set_version("v1");
  criv1::VersionResponse resp;
  auto ctx = rt->context();
  // Only here: wait for the socket to accept, so an agent started next to
  // a runtime that is still coming up does not fail its start.
  ctx->set_wait_for_ready(true);
  if (grpc::Status st = rt->stub_->Version(ctx.get(), req, &resp); !st.ok())
    return from_grpc_status(st, "CRI Version on " + socket.string());
  rt->name_ = resp.runtime_name().empty() ? "cri" : resp.runtime_name();
  rt->version_ = resp.runtime_version();
  spdlog::info("cri: {} {} (CRI {}) on {}", rt->name_, rt->version_, resp.runtime_api_version(),
               socket.string());
  return rt;
}

CriRuntime::CriRuntime(Options opts, std::filesystem::path socket,
                       std::shared_ptr<grpc::Channel> channel)
    : opts_(std::move(opts)),
      socket_(std::move(socket)),
      channel_(std::move(channel)),
      stub_(criv1::RuntimeService::NewStub(channel_)) {}

std::unique_ptr<grpc::ClientContext> CriRuntime::context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + opts_.timeout);
  return ctx;
}

Result<std::vector<criv1::PodSandbox>> CriRuntime::ready_sandboxes() {
  criv1::ListPodSandboxRequest req;
  req.mutable_filter()->mutable_state()->set_state(criv1::SANDBOX_READY);
  criv1::ListPodSandboxResponse resp;
  if (grpc::Status st = stub_->ListPodSandbox(context().get(), req, &resp); !st.ok())
    return from_grpc_status(st, "CRI ListPodSandbox");
  // The filter is a request; a runtime that ignores it must not hand us
  // stopped sandboxes.
  std::vector<criv1::PodSandbox> out;
  for (auto& s : *resp.mutable_items())
    if (s.state() == criv1::SANDBOX_READY) out.push_back(std::move(s));
  return out;
}

Result<std::vector<criv1::Container>> CriRuntime::containers(const std::string& sandbox_id) {
  criv1::ListContainersRequest req;
  if (!sandbox_id.empty()) req.mutable_filter()->set_pod_sandbox_id(sandbox_id);
  criv1::ListContainersResponse resp;
  if (grpc::Status st = stub_->ListContainers(context().get(), req, &resp); !st.ok())
    return from_grpc_status(st, "CRI ListContainers");
  return std::vector<criv1::Container>(resp.containers().begin(), resp.containers().end());
}

Result<runtime::PodInfo> CriRuntime::resolve(const criv1::PodSandbox& sandbox,
                                             const std::vector<criv1::Container>& containers) {
  criv1::PodSandboxStatusRequest sreq;
  sreq.set_pod_sandbox_id(sandbox.id());
  sreq.set_verbose(true);
  criv1::PodSandboxStatusResponse sresp;
  if (grpc::Status st = stub_->PodSandboxStatus(context().get(), sreq, &sresp); !st.ok())
    return from_grpc_status(st, "CRI PodSandboxStatus " + sandbox.id());
  if (sresp.status().state() != criv1::SANDBOX_READY)
    return Error::not_found("sandbox " + sandbox.id() + " is no longer ready");
  auto info = parse_verbose_info(info_document(sresp.info()));
  if (!info.ok()) return std::move(info).error().wrapped("sandbox " + sandbox.id());
  runtime::PodInfo pod = map_sandbox(sresp.status(), *info, opts_.roots);

  // Several attempts of the same container may exist (restarts): report the
  // newest, which is the one running or about to.
  std::map<std::string, const criv1::Container*> newest;
  for (const auto& c : containers) {
    if (c.pod_sandbox_id() != sandbox.id()) continue;
    const criv1::Container*& slot = newest[c.metadata().name()];
    if (slot == nullptr || c.metadata().attempt() > slot->metadata().attempt() ||
        (c.metadata().attempt() == slot->metadata().attempt() &&
         c.created_at() > slot->created_at()))
      slot = &c;
  }
  for (const auto& [name, c] : newest) {
    criv1::ContainerStatusRequest creq;
    creq.set_container_id(c->id());
    creq.set_verbose(true);
    criv1::ContainerStatusResponse cresp;
    if (grpc::Status st = stub_->ContainerStatus(context().get(), creq, &cresp); !st.ok()) {
      if (st.error_code() == grpc::StatusCode::NOT_FOUND) continue;  // removed meanwhile
      return from_grpc_status(st, "CRI ContainerStatus " + c->id());
    }
    auto cinfo = parse_verbose_info(info_document(cresp.info()));
    if (!cinfo.ok()) return std::move(cinfo).error().wrapped("container " + c->id());
    runtime::ContainerInfo container = map_container(cresp.status(), *cinfo);
    if (container.pid > 0) {
      // The process may exit between the runtime's answer and this read;
      // then it is not running as far as faults are concerned.
      if (auto paths = runtime::read_proc_cgroup(container.pid, opts_.roots.proc_root);
          paths.ok()) {
        container.cgroups = std::move(*paths);
      } else {
        spdlog::debug("cri: container {} pid {}: {}", c->id(), container.pid,
                      paths.error().message());
        container.pid = 0;
      }
    }
    pod.containers.push_back(std::move(container));
  }
  return pod;
}

Result<std::vector<runtime::PodInfo>> CriRuntime::list_pods() {
  NQ_ASSIGN_OR_RETURN(auto sandboxes, ready_sandboxes());
  // One ListContainers for the node instead of one per pod.
  NQ_ASSIGN_OR_RETURN(auto all_containers, containers(""));
  // The calls per pod are independent: fan them out (bounded) on the one
  // channel; stub and channel are safe for concurrent calls.
  std::vector<std::optional<Result<runtime::PodInfo>>> resolved(sandboxes.size());
  bounded_parallel_for(sandboxes.size(), opts_.parallel_pods, [&](size_t i) {
    resolved[i].emplace(resolve(sandboxes[i], all_containers));
  });
  std::vector<runtime::PodInfo> pods;
  pods.reserve(sandboxes.size());
  for (auto& slot : resolved) {
    Result<runtime::PodInfo>& pod = *slot;
    if (!pod.ok()) {
      if (pod.error().status_code() == Code::kNotFound) continue;  // gone while we looked
      return std::move(pod).error();
    }
    pods.push_back(std::move(*pod));
  }
  return pods;
}

Result<runtime::PodInfo> CriRuntime::get_pod(const std::string& namespace_name,
                                             const std::string& name) {
  NQ_ASSIGN_OR_RETURN(auto sandboxes, ready_sandboxes());
  const criv1::PodSandbox* found = nullptr;
  for (const auto& s : sandboxes) {
    if (s.metadata().namespace_() != namespace_name || s.metadata().name() != name) continue;
    if (found == nullptr || s.created_at() > found->created_at()) found = &s;
  }
  if (found == nullptr)
    return Error::not_found("pod " + namespace_name + "/" + name + " has no ready sandbox on " +
                            name_);
  NQ_ASSIGN_OR_RETURN(auto list, containers(found->id()));
  return resolve(*found, list);
}

}  // namespace nq::cri
