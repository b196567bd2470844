#include "bench/steps.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "agent/journal/journal.h"
#include "agent/net/links.h"
#include "agent/net/netfault_bpf.h"
#include "agent/server/status.h"

namespace nq::bench {
namespace {

namespace v1 = nodequake::v1;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// An InjectionBegun record of the size the agent writes for a partition.
nodequake::v1::journal::Record sample_record(int i) {
  nodequake::v1::journal::Record rec;
  v1::Injection* inj = rec.mutable_begun()->mutable_injection();
  inj->set_id("nqb-steps-" + std::to_string(i));
  inj->mutable_target()->mutable_pod()->set_namespace_("nqb-steps");
  inj->mutable_target()->mutable_pod()->set_name("client");
  inj->mutable_spec()->mutable_partition()->mutable_path()->set_direction(v1::DIRECTION_TO);
  inj->mutable_spec()->mutable_partition()->mutable_path()->mutable_scope()->add_remote_cidrs(
      "10.215.0.3/32");
  inj->set_state(v1::INJECTION_STATE_ACTIVE);
  inj->set_kind("partition");
  inj->set_pod_uid("00000000-0000-4000-8000-000000000000");
  rec.mutable_begun()->set_link_key("4:4026532677/eth0");
  return rec;
}

}  // namespace

Result<std::vector<StepFigures>> measure_steps(const StepOptions& o) {
  if (o.netns == nullptr || o.stub == nullptr)
    return Error::invalid_argument("steps", "needs the pod's netns and the agent's stub");
  std::vector<double> rpc, append, load, attach, detach;

  NQ_ASSIGN_OR_RETURN(Journal journal, Journal::open(o.journal_dir));
  NQ_ASSIGN_OR_RETURN(int ifindex, run_in_netns(*o.netns, [&]() -> Result<int> {
                        NQ_ASSIGN_OR_RETURN(net::NlSocket sock, net::NlSocket::open_route());
                        return net::link_index(sock, o.ifname);
                      }));
  net::NetfaultLoadOptions lopts;
  lopts.attach = net::NetfaultLoadOptions::Attach::kAuto;

  for (int i = 0; i < o.runs; ++i) {
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::ListResponse resp;
      const auto t = Clock::now();
      const grpc::Status st = o.stub->List(&ctx, v1::ListRequest{}, &resp);
      rpc.push_back(ms_since(t));
      if (!st.ok()) return from_grpc_status(st, "List");
    }
    {
      const auto rec = sample_record(i);
      const auto t = Clock::now();
      NQ_TRY(journal.append(rec));
      append.push_back(ms_since(t));
    }
    auto t = Clock::now();
    NQ_ASSIGN_OR_RETURN(net::NetfaultProgram prog, net::NetfaultProgram::load(lopts));
    load.push_back(ms_since(t));
    // Attach and detach on a thread inside the pod's namespace, as the agent
    // does (ifindexes are per namespace); the thread's own cost is included
    // there too.
    t = Clock::now();
    NQ_TRY(run_in_netns(*o.netns, [&] { return prog.attach(ifindex); }));
    attach.push_back(ms_since(t));
    t = Clock::now();
    NQ_TRY(run_in_netns(*o.netns, [&] { return prog.detach(); }));
    detach.push_back(ms_since(t));
  }
  return std::vector<StepFigures>{
      {"gRPC round trip (List)", "every RPC", traffic::summarize(rpc)},
      {"journal append + fdatasync", "1 (partition apply) to 3 (bandwidth revert) per RPC",
       traffic::summarize(append)},
      {"netfault BPF load (verifier)", "apply, first fault on the pod", traffic::summarize(load)},
      {"BPF attach, egress+ingress", "apply, first fault on the pod", traffic::summarize(attach)},
      {"BPF detach, egress+ingress", "revert, last fault on the pod", traffic::summarize(detach)},
  };
}

}  // namespace nq::bench
