// The engine under FanOut: one unary RPC per slot, all started at once through
// gRPC's callback API, each with its own deadline; returns when all completed.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/server/status.h"
#include "controller/fanout/pool.h"

namespace nq::fanout {

template <class Req, class Resp>
struct CallSlot {
  std::string agent;
  Req request;
  Resp response;
  std::optional<Error> error;  // none: the call succeeded
  // The call reached the agent and its outcome is not known (deadline
  // exceeded, connection lost mid-call, ...).
  bool outcome_unknown = false;
  std::chrono::milliseconds took{0};
  // What the call needs until it completes.
  std::shared_ptr<nodequake::v1::Agent::Stub> stub;
  grpc::ClientContext context;
  std::chrono::steady_clock::time_point started;
};

// Whether a failed call may still have taken effect on the agent. A refusal
// with a definite answer (the agent validated and said no) did nothing.
inline bool may_have_acted(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return false;
    default:
      return true;
  }
}

// Runs `start(stub, ctx, req, resp, done)` for every slot, e.g.
//   [](auto& s, auto* c, auto* q, auto* p, auto cb) { s.async()->Apply(c, q, p, cb); }
// `rpc` names the method in errors ("Apply").
template <class Req, class Resp, class Start>
void run_parallel(AgentPool& pool, std::vector<std::unique_ptr<CallSlot<Req, Resp>>>& slots,
                  std::chrono::milliseconds deadline, const char* rpc, Start start) {
  std::latch done(static_cast<std::ptrdiff_t>(slots.size()));
  const auto wall_deadline = std::chrono::system_clock::now() + deadline;
  for (auto& slot : slots) {
    auto stub = pool.stub(slot->agent);
    if (!stub.ok()) {
      slot->error = std::move(stub).error();
      done.count_down();
      continue;
    }
    slot->stub = std::move(*stub);
    slot->context.set_deadline(wall_deadline);
    slot->started = std::chrono::steady_clock::now();
    CallSlot<Req, Resp>* s = slot.get();
    start(*s->stub, &s->context, &s->request, &s->response, [s, rpc, &done](grpc::Status st) {
      s->took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - s->started);
      if (!st.ok()) {
        s->error = from_grpc_status(st, std::string(rpc) + " on agent " + s->agent);
        s->outcome_unknown = may_have_acted(st.error_code());
      }
      done.count_down();
    });
  }
  // Every started call completes, at the latest at its deadline.
  done.wait();
}

}  // namespace nq::fanout
