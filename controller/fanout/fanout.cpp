#include "controller/fanout/fanout.h"

#include <google/protobuf/util/time_util.h>

#include <set>

#include "controller/fanout/ids.h"
#include "controller/fanout/parallel.h"

namespace nq::fanout {
namespace {

using google::protobuf::util::TimeUtil;

template <class Req, class Resp>
using Slots = std::vector<std::unique_ptr<CallSlot<Req, Resp>>>;

template <class Req, class Resp>
Slots<Req, Resp> slots_for(const std::vector<std::string>& agents, const Req& request) {
  Slots<Req, Resp> slots;
  for (const auto& a : agents) {
    auto s = std::make_unique<CallSlot<Req, Resp>>();
    s->agent = a;
    s->request = request;
    slots.push_back(std::move(s));
  }
  return slots;
}

std::string pod_key(const v1::PodRef& pod) {
  return pod.namespace_() + "/" + pod.name();
}

// Fills ids and leases; refuses a plan the agents would refuse anyway, before
// anything is injected. Errors name the plan entry.
Status prepare(std::vector<PlannedInjection>& plan, const ApplyOptions& options) {
  NQ_TRY(validate_experiment_uid(options.experiment_uid));
  if (plan.empty()) return Error::invalid_argument("plan", "no injections");
  if (options.lease.count() <= 0) return Error::invalid_argument("lease", "must be positive");
  std::set<std::string> ids;
  for (size_t i = 0; i < plan.size(); ++i) {
    PlannedInjection& p = plan[i];
    const std::string field = "plan[" + std::to_string(i) + "]";
    if (p.agent.empty()) return Error::invalid_argument(field + ".agent", "required");
    const v1::PodRef& pod = p.request.target().pod();
    if (pod.namespace_().empty() || pod.name().empty())
      return Error::invalid_argument(field + ".request.target.pod", "namespace and name required");
    if (!p.request.has_ttl())
      return Error::invalid_argument(field + ".request.ttl", "required (the agent's hard limit)");
    if (p.request.id().empty()) {
      auto id = injection_id(options.experiment_uid, pod, p.step);
      if (!id.ok()) return std::move(id).error().wrapped(field);
      p.request.set_id(*id);
    }
    if (!ids.insert(p.request.id()).second)
      return Error::invalid_argument(field + ".request.id",
                                     "\"" + p.request.id() + "\" appears twice in the plan");
    v1::Lease* lease = p.request.mutable_lease();
    lease->set_holder(lease_holder(options.experiment_uid));
    *lease->mutable_duration() = TimeUtil::SecondsToDuration(options.lease.count());
  }
  return ok();
}

std::string describe(const InjectionOutcome& o) {
  return "agent " + o.ref.agent + " pod " + pod_key(o.ref.pod) + " (injection " + o.ref.id +
         "): " + (o.error ? o.error->message() : "ok");
}

}  // namespace

std::vector<InjectionRef> ApplyReport::applied() const {
  std::vector<InjectionRef> out;
  for (const auto& o : injections)
    if (!o.error) out.push_back(o.ref);
  return out;
}

TargetsResult FanOut::list_targets(const std::vector<std::string>& agents,
                                   const v1::ListTargetsRequest& request) {
  auto slots = slots_for<v1::ListTargetsRequest, v1::ListTargetsResponse>(agents, request);
  run_parallel(pool_, slots, options_.list_deadline, "ListTargets",
               [](auto& stub, auto* ctx, auto* req, auto* resp, auto cb) {
                 stub.async()->ListTargets(ctx, req, resp, std::move(cb));
               });
  TargetsResult out;
  for (auto& s : slots) {
    if (s->error) {
      out.errors.push_back({s->agent, std::move(*s->error)});
      continue;
    }
    NodeTargets n{s->agent, s->response.node(), {}};
    n.pods.assign(s->response.pods().begin(), s->response.pods().end());
    out.nodes.push_back(std::move(n));
  }
  return out;
}

ApplyReport FanOut::apply(std::vector<PlannedInjection> plan, const ApplyOptions& options) {
  ApplyReport report;
  if (Status st = prepare(plan, options); !st.ok()) {
    report.error = std::move(st).error();
    return report;
  }
  Slots<v1::ApplyRequest, v1::ApplyResponse> slots;
  for (auto& p : plan) {
    auto s = std::make_unique<CallSlot<v1::ApplyRequest, v1::ApplyResponse>>();
    s->agent = p.agent;
    s->request = std::move(p.request);
    slots.push_back(std::move(s));
  }
  run_parallel(pool_, slots, options_.apply_deadline, "Apply",
               [](auto& stub, auto* ctx, auto* req, auto* resp, auto cb) {
                 stub.async()->Apply(ctx, req, resp, std::move(cb));
               });

  std::vector<InjectionRef> to_revert;
  const InjectionOutcome* first_failure = nullptr;
  size_t failures = 0;
  for (auto& s : slots) {
    InjectionOutcome o;
    o.ref = {s->agent, s->request.id(), s->request.target().pod()};
    o.error = std::move(s->error);
    o.outcome_unknown = s->outcome_unknown;
    o.took = s->took;
    if (!o.error) o.injection = std::move(*s->response.mutable_injection());
    if (!o.error || o.outcome_unknown) to_revert.push_back(o.ref);
    if (o.error) ++failures;
    report.injections.push_back(std::move(o));
  }
  for (const auto& o : report.injections)
    if (o.error) {
      first_failure = &o;
      break;
    }
  if (first_failure == nullptr) return report;

  std::string message = "apply failed on " + describe(*first_failure);
  if (failures > 1) message += " (and " + std::to_string(failures - 1) + " more failed)";
  if (options.all_or_nothing) {
    report.rolled_back = true;
    report.rollback = revert(to_revert);
    std::string stuck;
    for (const auto& r : report.rollback)
      if (r.error) stuck += (stuck.empty() ? "" : "; ") + r.error->message();
    message += "; rolled back " + std::to_string(report.rollback.size()) + " injection(s)";
    if (!stuck.empty())
      message += ", but these reverts failed (their lease expires within " +
                 std::to_string(options.lease.count()) + "s): " + stuck;
  }
  report.error = Error::status(first_failure->error->status_code(), message);
  return report;
}

std::vector<InjectionOutcome> FanOut::revert(const std::vector<InjectionRef>& injections) {
  Slots<v1::RevertRequest, v1::RevertResponse> slots;
  for (const auto& ref : injections) {
    auto s = std::make_unique<CallSlot<v1::RevertRequest, v1::RevertResponse>>();
    s->agent = ref.agent;
    s->request.set_id(ref.id);
    slots.push_back(std::move(s));
  }
  run_parallel(pool_, slots, options_.revert_deadline, "Revert",
               [](auto& stub, auto* ctx, auto* req, auto* resp, auto cb) {
                 stub.async()->Revert(ctx, req, resp, std::move(cb));
               });
  std::vector<InjectionOutcome> out;
  for (size_t i = 0; i < slots.size(); ++i) {
    auto& s = slots[i];
    InjectionOutcome o;
    o.ref = injections[i];
    o.took = s->took;
    // NOT_FOUND: the agent never had it (its Apply was refused or never
    // arrived), which is what a revert wants.
    if (s->error && s->error->status_code() != Code::kNotFound) {
      o.error = std::move(s->error);
      o.outcome_unknown = s->outcome_unknown;
    } else if (!s->error) {
      o.injection = std::move(*s->response.mutable_injection());
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<AgentOutcome> FanOut::revert_all(const std::vector<std::string>& agents,
                                             const std::string& actor, const std::string& reason) {
  v1::RevertAllRequest req;
  req.set_actor(actor);
  req.set_reason(reason);
  auto slots = slots_for<v1::RevertAllRequest, v1::RevertAllResponse>(agents, req);
  run_parallel(pool_, slots, options_.killswitch_deadline, "RevertAll",
               [](auto& stub, auto* ctx, auto* r, auto* resp, auto cb) {
                 stub.async()->RevertAll(ctx, r, resp, std::move(cb));
               });
  std::vector<AgentOutcome> out;
  for (auto& s : slots) {
    AgentOutcome o{s->agent, std::move(s->error), 0, {}, {}, s->took};
    if (!o.error) {
      o.count = static_cast<uint32_t>(s->response.reverted_size());
      for (const auto& f : s->response.failures()) o.failures.push_back(f.id() + ": " + f.error());
      o.killswitch = s->response.killswitch();
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<AgentOutcome> FanOut::release(const std::vector<std::string>& agents,
                                          const std::string& actor) {
  v1::ReleaseRequest req;
  req.set_actor(actor);
  auto slots = slots_for<v1::ReleaseRequest, v1::ReleaseResponse>(agents, req);
  run_parallel(pool_, slots, options_.killswitch_deadline, "Release",
               [](auto& stub, auto* ctx, auto* r, auto* resp, auto cb) {
                 stub.async()->Release(ctx, r, resp, std::move(cb));
               });
  std::vector<AgentOutcome> out;
  for (auto& s : slots) {
    AgentOutcome o{s->agent, std::move(s->error), 0, {}, {}, s->took};
    if (!o.error) o.killswitch = s->response.killswitch();
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<AgentOutcome> FanOut::renew(const std::vector<std::string>& agents,
                                        const std::string& holder,
                                        std::chrono::nanoseconds duration) {
  v1::RenewLeaseRequest req;
  req.set_holder(holder);
  *req.mutable_duration() = TimeUtil::NanosecondsToDuration(duration.count());
  auto slots = slots_for<v1::RenewLeaseRequest, v1::RenewLeaseResponse>(agents, req);
  run_parallel(pool_, slots, options_.renew_deadline, "RenewLease",
               [](auto& stub, auto* ctx, auto* r, auto* resp, auto cb) {
                 stub.async()->RenewLease(ctx, r, resp, std::move(cb));
               });
  std::vector<AgentOutcome> out;
  for (auto& s : slots) {
    AgentOutcome o{s->agent, std::move(s->error), 0, {}, {}, s->took};
    if (!o.error) o.count = s->response.renewed();
    out.push_back(std::move(o));
  }
  return out;
}

std::string summarize_failures(const std::vector<AgentOutcome>& outcomes) {
  std::string out;
  for (const auto& o : outcomes) {
    if (!o.error && o.failures.empty()) continue;
    if (!out.empty()) out += "; ";
    out += o.agent + ": ";
    if (o.error) {
      out += o.error->message();
    } else {
      for (size_t i = 0; i < o.failures.size(); ++i) out += (i ? ", " : "") + o.failures[i];
    }
  }
  return out;
}

}  // namespace nq::fanout
