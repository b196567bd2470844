#include "agent/core/manager.h"

#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/core/spec_engine.h"
#include "common/duration.h"

namespace nq::core {
namespace {

namespace v1 = nodequake::v1;
namespace jr = nodequake::v1::journal;
using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp to_timestamp(Clock::time_point t) {
  return TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

v1::Pod pod_to_proto(const runtime::PodInfo& pod, const runtime::SafetyPolicy& safety) {
  v1::Pod out;
  out.mutable_ref()->set_namespace_(pod.namespace_name);
  out.mutable_ref()->set_name(pod.name);
  out.mutable_ref()->set_uid(pod.uid);
  out.mutable_labels()->insert(pod.labels.begin(), pod.labels.end());
  for (const auto& ip : pod.ips) out.add_ips(ip);
  out.set_host_network(pod.host_network);
  out.set_netns(pod.netns_path);
  for (const auto& c : pod.containers) {
    auto* pc = out.add_containers();
    pc->set_name(c.name);
    pc->set_id(c.id);
    pc->set_pid(c.pid);
    pc->mutable_cgroups()->insert(c.cgroups.by_hierarchy.begin(), c.cgroups.by_hierarchy.end());
  }
  Status eligible = runtime::check_eligible(pod, safety);
  out.set_eligible(eligible.ok());
  if (!eligible.ok()) out.set_ineligible_reason(eligible.error().message());
  return out;
}

}  // namespace

InjectionManager::InjectionManager(ManagerOptions options, runtime::Runtime& runtime,
                                   Journal& journal, NetworkBackend& network,
                                   const Capabilities& caps, AgentMetrics* metrics,
                                   const Clock& clock)
    : options_(std::move(options)),
      runtime_(runtime),
      journal_(journal),
      network_(network),
      caps_(caps),
      metrics_(metrics),
      clock_(clock) {}

InjectionManager::~InjectionManager() {
  stop_expiry();
}

void InjectionManager::add_backend(WorkloadBackend& backend) {
  std::lock_guard lock(mu_);
  for (FaultKind k : backend.kinds()) workload_[k] = &backend;
}

WorkloadBackend* InjectionManager::backend_for(FaultKind kind) const {
  auto it = workload_.find(kind);
  return it == workload_.end() ? nullptr : it->second;
}

void InjectionManager::release_all_locked() {
  network_.release_all();
  std::vector<WorkloadBackend*> done;
  for (const auto& [kind, b] : workload_) {
    if (std::find(done.begin(), done.end(), b) != done.end()) continue;
    b->release_all();
    done.push_back(b);
  }
}

// Resources outside the network namespace (stressors, frozen cgroups,
// throttles, fill files) an earlier incarnation left, each undone by the
// backend of the kind that owned it.
Status InjectionManager::reconcile_resources_locked(size_t& failed) {
  const auto resources = mirror_.resources;
  for (const auto& [key, res] : resources) {
    WorkloadBackend* backend = nullptr;
    for (FaultKind k : kAllFaultKinds) {
      if (kind_name(k) == res.kind()) backend = backend_for(k);
    }
    if (backend == nullptr) {
      ++failed;
      spdlog::error(
          "reconcile: resource {} of injection {} has kind \"{}\", which no backend "
          "of this agent handles; kept in the journal",
          key, res.injection_id(), res.kind());
      continue;
    }
    if (Status st = backend->reconcile(res); !st.ok()) {
      ++failed;
      spdlog::error(
          "reconcile: resource {} of injection {} ({}): {}; kept in the journal for "
          "the next start",
          key, res.injection_id(), res.kind(), st.error().message());
      continue;
    }
    jr::Record rec;
    rec.mutable_resource_released()->set_key(key);
    NQ_TRY(append(rec));
    spdlog::info("reconcile: released {} of injection {} ({})", key, res.injection_id(),
                 res.kind());
  }
  return ok();
}

Status InjectionManager::append(const jr::Record& record) {
  NQ_TRY(journal_.append(record));
  reduce_into(mirror_, record);
  return ok();
}

void InjectionManager::update_gauges() {
  if (metrics_ == nullptr) return;
  for (FaultKind k : kAllFaultKinds) {
    const auto n = std::count_if(active_.begin(), active_.end(),
                                 [k](const auto& kv) { return kv.second.kind == k; });
    metrics_->set_active(kind_name(k), static_cast<double>(n));
  }
  metrics_->set_journal_entries(
      static_cast<double>(mirror_.injections.size() + mirror_.links.size()));
  metrics_->set_journal_bytes(static_cast<double>(journal_.size_bytes()));
  metrics_->set_killswitch(killswitch_.engaged());
}

void InjectionManager::maybe_compact() {
  if (journal_.size_bytes() < options_.compact_bytes) return;
  if (Status st = journal_.rewrite(to_records(mirror_)); !st.ok())
    spdlog::warn("journal compaction failed (appends continue): {}", st.error().message());
}

void InjectionManager::remember(v1::Injection info) {
  history_.push_front(std::move(info));
  while (history_.size() > options_.history) history_.pop_back();
}

// ---------------------------------------------------------------- recovery

Status InjectionManager::recover() {
  std::lock_guard lock(mu_);
  mirror_ = reduce(journal_.replayed());
  if (journal_.dropped_bytes() > 0)
    spdlog::warn("journal: dropped {} bytes after the last valid record ({})",
                 journal_.dropped_bytes(), journal_.drop_reason());

  // Kernel state first: every link an earlier incarnation owned is torn down
  // (restoring the qdiscs it replaced), which removes every injection on it.
  const auto links = mirror_.links;
  size_t failed = 0;
  for (const auto& [key, link] : links) {
    if (Status st = network_.reconcile(link); !st.ok()) {
      ++failed;
      spdlog::error("reconcile: link {} ({} in {}): {}; kept in the journal for the next start",
                    key, link.ifname(), link.netns().path(), st.error().message());
      continue;
    }
    jr::Record rec;
    rec.mutable_link_released()->set_key(key);
    NQ_TRY(append(rec));
    spdlog::info("reconcile: restored link {} in {}", link.ifname(), link.netns().path());
  }
  NQ_TRY(reconcile_resources_locked(failed));
  const auto injections = mirror_.injections;
  for (const auto& [id, begun] : injections) {
    jr::Record rec;
    rec.mutable_ended()->set_id(id);
    rec.mutable_ended()->set_reason("reconcile");
    NQ_TRY(append(rec));
    v1::Injection info = begun.injection();
    info.set_state(v1::INJECTION_STATE_REVERTED);
    info.set_revert_reason("reconcile");
    if (metrics_) metrics_->observe_revert(info.kind(), "reconcile", 0);
    spdlog::info("reconcile: injection {} ({} on {}/{}) reverted", id, info.kind(),
                 info.target().pod().namespace_(), info.target().pod().name());
    remember(std::move(info));
  }
  if (mirror_.killswitch) {
    killswitch_ = *mirror_.killswitch;
    if (killswitch_.engaged())
      spdlog::warn("kill switch is engaged (by {}: {}); new injections are refused until Release",
                   killswitch_.actor(), killswitch_.reason());
  }
  NQ_TRY(journal_.rewrite(to_records(mirror_)));
  update_gauges();
  if (failed > 0)
    return Error::internal("reconcile left " + std::to_string(failed) +
                           " link(s) or resource(s) unrestored; see the log");
  return ok();
}

// ---------------------------------------------------------------- apply

Status InjectionManager::check_repeat(const Active& existing,
                                      const v1::ApplyRequest& request) const {
  const v1::Injection& info = existing.info;
  auto differs = [&](const char* field) {
    return Error::already_exists("injection " + request.id() + " exists with a different " + field +
                                 "; Apply is idempotent only for the same request");
  };
  if (!MessageDifferencer::Equals(info.target(), request.target())) return differs("target");
  if (!MessageDifferencer::Equals(info.spec(), request.spec())) return differs("spec");
  const auto ttl = std::chrono::nanoseconds(TimeUtil::DurationToNanoseconds(request.ttl()));
  const auto created =
      std::chrono::nanoseconds(TimeUtil::TimestampToNanoseconds(info.created_at()));
  const auto expires =
      std::chrono::nanoseconds(TimeUtil::TimestampToNanoseconds(info.expires_at()));
  if (expires - created != ttl) return differs("ttl");
  if (!MessageDifferencer::Equals(info.lease(), request.lease())) return differs("lease");
  return ok();
}

Result<v1::ApplyResponse> InjectionManager::apply(const v1::ApplyRequest& request) {
  NQ_ASSIGN_OR_RETURN(ValidatedApply v, validate_apply(request, options_.limits));
  const auto started = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);

  if (auto it = active_.find(v.id); it != active_.end()) {
    NQ_TRY(check_repeat(it->second, request));
    v1::ApplyResponse resp;
    *resp.mutable_injection() = it->second.info;
    resp.set_created(false);
    return resp;
  }
  if (killswitch_.engaged())
    return Error::failed_precondition("kill switch engaged by " + killswitch_.actor() + " at " +
                                      TimeUtil::ToString(killswitch_.since()) + " (" +
                                      killswitch_.reason() +
                                      "): new injections are refused until Release");
  for (const auto& old : history_) {
    if (old.id() == v.id)
      return Error::failed_precondition("injection id " + v.id + " was already used (reverted: " +
                                        old.revert_reason() + "); use a new id");
  }
  const FaultKind kind = fault_kind(v.fault);
  WorkloadBackend* workload = nullptr;
  if (!is_network_kind(kind)) {
    workload = backend_for(kind);
    if (workload == nullptr)
      return Error::failed_precondition(std::string(kind_name(kind)) +
                                        " faults are not enabled on this agent");
  }
  if (auto* net = std::get_if<NetworkFault>(&v.fault)) {
    // netem's engine (sch_netem or the eBPF delay line) decides which kernel
    // features the fault needs, so it is chosen before they are checked.
    NQ_TRY(resolve_engine(*net, engine_availability(caps_)));
  }
  for (const auto& [cap, what] : required_capabilities(v.fault)) NQ_TRY(caps_.require(cap, what));

  auto pod = runtime_.get_pod(v.pod_namespace, v.pod_name);
  if (!pod.ok()) {
    if (pod.error().status_code() == Code::kNotFound)
      return Error::not_found("pod " + v.pod_namespace + "/" + v.pod_name + " not found on node " +
                              options_.node_name);
    return std::move(pod).error().wrapped("resolve pod " + v.pod_namespace + "/" + v.pod_name);
  }
  if (!v.pod_uid.empty() && pod->uid != v.pod_uid)
    return Error::not_found("pod " + pod->key() + " has uid " + pod->uid + ", not " + v.pod_uid +
                            " (recreated?)");
  NQ_TRY(runtime::check_eligible(*pod, options_.safety));
  std::vector<runtime::ContainerInfo> containers;
  for (const auto& c : v.containers) {
    auto pc = std::find_if(pod->containers.begin(), pod->containers.end(),
                           [&](const auto& info) { return info.name == c; });
    if (pc == pod->containers.end())
      return Error::not_found("pod " + pod->key() + " has no container " + c);
    containers.push_back(*pc);
  }
  if (v.containers.empty()) containers = pod->containers;

  const auto now = clock_.now();
  Active a;
  a.kind = kind;
  a.expires = now + std::chrono::duration_cast<std::chrono::system_clock::duration>(v.ttl);
  a.lease_expires = Clock::time_point::max();
  v1::Injection& info = a.info;
  info.set_id(v.id);
  *info.mutable_target() = request.target();
  *info.mutable_spec() = request.spec();
  info.set_state(v1::INJECTION_STATE_ACTIVE);
  *info.mutable_created_at() = to_timestamp(now);
  *info.mutable_expires_at() = to_timestamp(a.expires);
  info.set_pod_uid(pod->uid);
  info.set_kind(std::string(kind_name(kind)));
  if (!v.lease_holder.empty()) {
    *info.mutable_lease() = request.lease();
    a.lease_duration = v.lease_duration;
    a.lease_expires =
        now + std::chrono::duration_cast<std::chrono::system_clock::duration>(v.lease_duration);
    *info.mutable_lease_expires_at() = to_timestamp(a.lease_expires);
  }

  // Journaled before the kernel is touched: a crash from here on is undone
  // by the next start's recover().
  jr::Record begun;
  *begun.mutable_begun()->mutable_injection() = info;
  NQ_TRY(append(begun));

  auto details = workload != nullptr
                     ? workload->apply(v.id, std::get<WorkloadFault>(v.fault), *pod, containers)
                     : network_.apply(v.id, std::get<NetworkFault>(v.fault), *pod);
  if (!details.ok()) {
    jr::Record ended;
    ended.mutable_ended()->set_id(v.id);
    ended.mutable_ended()->set_reason("apply-failed");
    if (Status st = append(ended); !st.ok())
      spdlog::warn("journal: {} (the next start reconciles injection {})", st.error().message(),
                   v.id);
    return std::move(details).error().wrapped("apply " + std::string(kind_name(kind)) + " to pod " +
                                              pod->key());
  }
  info.mutable_details()->insert(details->begin(), details->end());
  if (kind == FaultKind::kNetem) {
    const auto& net = std::get<NetworkFault>(v.fault);
    (*info.mutable_details())["engine"] = std::string(engine_name(net.engine));
    (*info.mutable_details())["engine_reason"] = net.engine_reason;
  }
  v1::ApplyResponse resp;
  *resp.mutable_injection() = info;
  resp.set_created(true);
  active_.emplace(v.id, std::move(a));

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (metrics_) metrics_->observe_apply(kind_name(kind), secs);
  update_gauges();
  expiry_cv_.notify_all();
  spdlog::info("applied {} {} to {} (ttl {})", resp.injection().kind(), v.id, pod->key(),
               format_duration(v.ttl));
  return resp;
}

// ---------------------------------------------------------------- revert

Result<v1::Injection> InjectionManager::revert_locked(const std::string& id,
                                                      const std::string& reason) {
  auto it = active_.find(id);
  if (it == active_.end()) {
    for (const auto& old : history_) {
      if (old.id() == id) return old;  // reverted already: the same answer again
    }
    return Error::not_found("no injection " + id + " on node " + options_.node_name);
  }
  const auto started = std::chrono::steady_clock::now();
  if (WorkloadBackend* workload = backend_for(it->second.kind); workload != nullptr) {
    NQ_TRY(workload->revert(id));
  } else {
    NQ_TRY(network_.revert(id));
  }
  jr::Record ended;
  ended.mutable_ended()->set_id(id);
  ended.mutable_ended()->set_reason(reason);
  if (Status st = append(ended); !st.ok())
    spdlog::warn("journal: {} (the next start reconciles injection {} again, harmlessly)",
                 st.error().message(), id);

  v1::Injection info = std::move(it->second.info);
  const FaultKind kind = it->second.kind;
  active_.erase(it);
  info.set_state(v1::INJECTION_STATE_REVERTED);
  info.set_revert_reason(reason);
  remember(info);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (metrics_) metrics_->observe_revert(kind_name(kind), reason, secs);
  update_gauges();
  maybe_compact();
  spdlog::info("reverted {} {} ({})", info.kind(), id, reason);
  return info;
}

Result<v1::Injection> InjectionManager::revert(const std::string& id) {
  NQ_TRY(validate_id(id, "id"));
  std::lock_guard lock(mu_);
  return revert_locked(id, "revert");
}

v1::ListResponse InjectionManager::list() const {
  std::lock_guard lock(mu_);
  v1::ListResponse resp;
  for (const auto& [id, a] : active_) {
    v1::Injection* info = resp.add_injections();
    *info = a.info;
    if (WorkloadBackend* workload = backend_for(a.kind); workload != nullptr) {
      for (auto& [k, val] : workload->observe(id)) (*info->mutable_details())[k] = val;
    } else if (is_network_kind(a.kind)) {
      for (auto& [k, val] : network_.observe(id)) (*info->mutable_details())[k] = val;
    }
  }
  *resp.mutable_killswitch() = killswitch_;
  return resp;
}

std::vector<StressLoad> InjectionManager::stress_loads() const {
  std::lock_guard lock(mu_);
  std::vector<StressLoad> out;
  for (const auto& [id, a] : active_) {
    WorkloadBackend* workload = backend_for(a.kind);
    if (workload == nullptr) continue;
    for (StressLoad& load : workload->loads(id)) {
      load.id = id;
      load.pod = a.info.target().pod().namespace_() + "/" + a.info.target().pod().name();
      out.push_back(std::move(load));
    }
  }
  return out;
}

size_t InjectionManager::active_count() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

Result<v1::ListTargetsResponse> InjectionManager::list_targets(
    const v1::ListTargetsRequest& request) {
  NQ_ASSIGN_OR_RETURN(runtime::Selector selector, runtime::selector_from_proto(request.selector()));
  NQ_ASSIGN_OR_RETURN(auto pods, runtime_.list_pods());
  v1::ListTargetsResponse resp;
  resp.set_node(options_.node_name);
  for (const auto& pod : pods) {
    if (!selector.matches(pod)) continue;
    v1::Pod p = pod_to_proto(pod, options_.safety);
    if (!p.eligible() && !request.include_ineligible()) continue;
    *resp.add_pods() = std::move(p);
  }
  return resp;
}

Result<uint32_t> InjectionManager::renew_lease(const std::string& holder,
                                               std::chrono::nanoseconds duration) {
  NQ_TRY(validate_id(holder, "holder"));
  if (duration < std::chrono::nanoseconds(0))
    return Error::invalid_argument("duration", "negative");
  if (duration > std::chrono::nanoseconds(0) && duration < options_.limits.min_lease)
    return Error::invalid_argument("duration", format_duration(duration) + " is shorter than " +
                                                   format_duration(options_.limits.min_lease));
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  uint32_t renewed = 0;
  for (auto& [id, a] : active_) {
    if (!a.info.has_lease() || a.info.lease().holder() != holder) continue;
    if (duration > std::chrono::nanoseconds(0)) a.lease_duration = duration;
    // A lease never outlives the TTL: that is the agent's own hard limit.
    a.lease_expires = std::min(
        a.expires,
        now + std::chrono::duration_cast<std::chrono::system_clock::duration>(a.lease_duration));
    *a.info.mutable_lease_expires_at() = to_timestamp(a.lease_expires);
    ++renewed;
  }
  expiry_cv_.notify_all();
  return renewed;
}

Result<v1::RevertAllResponse> InjectionManager::revert_all(const std::string& actor,
                                                           const std::string& reason) {
  std::lock_guard lock(mu_);
  v1::KillSwitchStatus ks;
  ks.set_engaged(true);
  ks.set_actor(actor.empty() ? "unknown" : actor);
  ks.set_reason(reason);
  *ks.mutable_since() = to_timestamp(clock_.now());
  // Engaged durably before anything else: if the agent dies half way, the
  // next incarnation still refuses new injections.
  jr::Record rec;
  *rec.mutable_killswitch()->mutable_status() = ks;
  NQ_TRY(append(rec));
  killswitch_ = ks;
  spdlog::warn("kill switch engaged by {}: {}", ks.actor(), reason);

  v1::RevertAllResponse resp;
  std::vector<std::string> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (const auto& id : ids) {
    auto r = revert_locked(id, "revert-all");
    if (r.ok()) {
      *resp.add_reverted() = *r;
    } else {
      auto* f = resp.add_failures();
      f->set_id(id);
      f->set_error(r.error().message());
      spdlog::error("kill switch: revert {} failed: {}", id, r.error().message());
    }
  }
  // The kill switch leaves nothing of ours behind, not even idle programs.
  release_all_locked();
  *resp.mutable_killswitch() = killswitch_;
  update_gauges();
  return resp;
}

Result<v1::KillSwitchStatus> InjectionManager::release(const std::string& actor) {
  std::lock_guard lock(mu_);
  v1::KillSwitchStatus ks;
  ks.set_engaged(false);
  ks.set_actor(actor.empty() ? "unknown" : actor);
  *ks.mutable_since() = to_timestamp(clock_.now());
  jr::Record rec;
  *rec.mutable_killswitch()->mutable_status() = ks;
  NQ_TRY(append(rec));
  killswitch_ = ks;
  update_gauges();
  spdlog::warn("kill switch released by {}", ks.actor());
  return ks;
}

v1::KillSwitchStatus InjectionManager::killswitch() const {
  std::lock_guard lock(mu_);
  return killswitch_;
}

// ---------------------------------------------------------------- expiry

Clock::time_point InjectionManager::next_deadline_locked() const {
  Clock::time_point next = Clock::time_point::max();
  for (const auto& [id, a] : active_) next = std::min({next, a.expires, a.lease_expires});
  return next;
}

Clock::time_point InjectionManager::expire_due() {
  std::lock_guard lock(mu_);
  const auto now = clock_.now();
  std::vector<std::pair<std::string, std::string>> due;
  for (const auto& [id, a] : active_) {
    if (a.expires <= now) {
      due.emplace_back(id, "ttl");
    } else if (a.lease_expires <= now) {
      due.emplace_back(id, "lease");
    }
  }
  for (const auto& [id, reason] : due) {
    if (auto r = revert_locked(id, reason); !r.ok())
      spdlog::error("expiry ({}) of {} failed, retrying: {}", reason, id, r.error().message());
  }
  network_.release_idle();
  return next_deadline_locked();
}

void InjectionManager::start_expiry() {
  std::lock_guard lock(mu_);
  if (expiry_thread_.joinable()) return;
  expiry_stop_ = false;
  expiry_thread_ = std::thread([this] {
    for (;;) {
      const auto next = expire_due();
      std::unique_lock wait_lock(mu_);
      if (expiry_stop_) return;
      // Wake at the next deadline, when one changes (apply/renew), or at least
      // every second so a failed revert is retried and clock steps are seen.
      const auto cap = std::chrono::system_clock::now() + std::chrono::seconds(1);
      expiry_cv_.wait_until(wait_lock, std::min(next, cap), [this] { return expiry_stop_; });
      if (expiry_stop_) return;
    }
  });
}

void InjectionManager::stop_expiry() {
  {
    std::lock_guard lock(mu_);
    expiry_stop_ = true;
  }
  expiry_cv_.notify_all();
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

void InjectionManager::revert_everything_for_shutdown() {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, a] : active_) ids.push_back(id);
  for (const auto& id : ids) {
    if (auto r = revert_locked(id, "shutdown"); !r.ok())
      spdlog::error("shutdown: revert {} failed (the next start reconciles it): {}", id,
                    r.error().message());
  }
  release_all_locked();
}

}  // namespace nq::core
