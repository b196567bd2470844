#include "controller/daemon/run.h"

#include <fcntl.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <thread>

#include "common/fd.h"
#include "common/file.h"
#include "controller/experiment/lower.h"
#include "controller/experiment/summary.h"
#include "controller/experiment/workflow_plan.h"
#include "controller/fanout/ids.h"
#include "controller/selection/selection.h"

namespace nq::controller {

using google::protobuf::util::TimeUtil;
using SteadyClock = std::chrono::steady_clock;

std::string_view stop_reason_name(StopReason r) noexcept {
  switch (r) {
    case StopReason::kNone:
      return "none";
    case StopReason::kRule:
      return "rule";
    case StopReason::kOperator:
      return "operator";
    case StopReason::kKillSwitch:
      return "killswitch";
    case StopReason::kShutdown:
      return "shutdown";
    case StopReason::kFailure:
      return "failure";
    case StopReason::kSloCheck:
      return "slo-check";
  }
  return "?";
}

std::string_view state_name(v1::ExperimentState s) noexcept {
  switch (s) {
    case v1::EXPERIMENT_STATE_PENDING:
      return "Pending";
    case v1::EXPERIMENT_STATE_RUNNING:
      return "Running";
    case v1::EXPERIMENT_STATE_SUCCEEDED:
      return "Succeeded";
    case v1::EXPERIMENT_STATE_FAILED:
      return "Failed";
    case v1::EXPERIMENT_STATE_ABORTED:
      return "Aborted";
    case v1::EXPERIMENT_STATE_REVERTED:
      return "Reverted";
    case v1::EXPERIMENT_STATE_INTERRUPTED:
      return "Interrupted";
    default:
      return "Unknown";
  }
}

std::string document_kind(const experiment::Document& doc) {
  if (const auto* e = std::get_if<experiment::Experiment>(&doc))
    return std::string(experiment::kind_name(e->kind));
  return "Workflow";
}

std::string document_name(const experiment::Document& doc) {
  return std::visit(
      [](const auto& d) { return d.namespace_.empty() ? d.name : d.namespace_ + "/" + d.name; },
      doc);
}

std::string document_summary(const experiment::Document& doc) {
  if (const auto* e = std::get_if<experiment::Experiment>(&doc)) return experiment::summarize(*e);
  const auto& wf = std::get<experiment::Workflow>(doc);
  auto plan = experiment::plan_workflow(wf);
  if (!plan.ok()) return "Workflow " + document_name(doc);
  return experiment::summarize(wf, *plan);
}

namespace {

std::string bound(prom::Comparison c, double threshold) {
  std::ostringstream ss;
  ss << prom::comparison_symbol(c) << " " << threshold;
  return ss.str();
}

int64_t ms(nanoseconds d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

// Step names become part of injection ids: [A-Za-z0-9._-] only.
std::string step_id(const std::string& step, size_t fault, size_t faults) {
  if (faults <= 1) return step;
  const std::string f = "f" + std::to_string(fault);
  return step.empty() ? f : step + "-" + f;
}

google::protobuf::Duration proto_duration(nanoseconds d) {
  return TimeUtil::NanosecondsToDuration(d.count());
}

}  // namespace

Run::Run(Submission submission, experiment::Document doc, RunDeps deps, RunOptions options)
    : sub_(std::move(submission)),
      doc_(std::move(doc)),
      deps_(std::move(deps)),
      opts_(std::move(options)),
      kind_(document_kind(doc_)) {
  status_.set_id(sub_.id);
  status_.set_name(document_name(doc_));
  status_.set_kind(kind_);
  status_.set_state(v1::EXPERIMENT_STATE_PENDING);
  status_.set_phase("pending");
  status_.set_submitted_by(sub_.actor);
  *status_.mutable_submitted_at() = TimeUtil::GetCurrentTime();
  status_.set_seed(sub_.seed);
  status_.set_summary(document_summary(doc_));
  slo_report_.experiment = sub_.id;
  if (const auto* e = std::get_if<experiment::Experiment>(&doc_)) {
    estimate_ = e->duration.value_or(nanoseconds(0));
    slos_ = checks_from_rules(e->abort_when);
  } else {
    slos_ = workflow_slos(std::get<experiment::Workflow>(doc_));
  }
}

v1::ExperimentStatus Run::status() const {
  std::lock_guard lock(mu_);
  v1::ExperimentStatus s = status_;
  if (s.state() == v1::EXPERIMENT_STATE_RUNNING) {
    const auto elapsed = SteadyClock::now() - started_;
    s.set_elapsed_ms(ms(elapsed));
    s.set_remaining_ms(std::max<int64_t>(0, ms(estimate_ - elapsed)));
  }
  s.set_has_report(has_report_);
  return s;
}

bool Run::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

std::optional<std::pair<nlohmann::json, std::string>> Run::report() const {
  std::lock_guard lock(mu_);
  if (!has_report_) return std::nullopt;
  return std::make_pair(report_json(), report_table());
}

std::string Run::report_table() const {
  std::string table = sub_.id + " (" + status_.name() +
                      "): " + std::string(state_name(status_.state())) +
                      (status_.message().empty() ? "" : " — " + status_.message()) + "\n" +
                      prom::to_table(slo_report_);
  std::vector<PhaseRecord> phases = phases_;
  if (std::holds_alternative<experiment::Experiment>(doc_)) {
    // A plain experiment is one phase: its pre-check, the sample before its
    // revert, its recovery.
    PhaseRecord p;
    p.lanes = {{status_.name()}};
    p.before = slo_report_.pre;
    p.during = during_;
    p.after = slo_report_.post;
    p.recovery = slo_report_.recovery;
    phases = {std::move(p)};
  }
  if (std::string t = phases_table(phases); !t.empty()) table += "\n" + t;
  return table;
}

nlohmann::json Run::report_json() const {
  nlohmann::json chosen = nlohmann::json::array();
  for (const auto& c : status_.chosen())
    chosen.push_back({{"node", c.node()},
                      {"namespace", c.namespace_()},
                      {"name", c.name()},
                      {"step", c.step()}});
  nlohmann::json selections = nlohmann::json::array();
  for (const auto& s : status_.selections())
    selections.push_back({{"step", s.step()},
                          {"mode", s.mode()},
                          {"candidates", s.candidates()},
                          {"chosen", s.chosen()}});
  nlohmann::json j = {{"experiment", sub_.id},
                      {"name", status_.name()},
                      {"kind", kind_},
                      {"summary", status_.summary()},
                      {"state", state_name(status_.state())},
                      {"message", status_.message()},
                      {"submitted_by", sub_.actor},
                      {"seed", sub_.seed},
                      {"candidates", status_.candidates()},
                      {"chosen", chosen},
                      {"selections", selections},
                      {"slo", prom::to_json(slo_report_)}};
  if (!status_.abort_rule().empty())
    j["abort"] = {{"rule", status_.abort_rule()}, {"value", status_.abort_value()}};
  j["submitted_at"] = TimeUtil::ToString(status_.submitted_at());
  if (status_.has_ended_at()) j["ended_at"] = TimeUtil::ToString(status_.ended_at());
  // slo.during: the SLOs just before each chaos step's revert, in the order
  // they were sampled (a plain experiment has one step, "").
  nlohmann::json during = nlohmann::json::array();
  if (during_) {
    during.push_back(prom::to_json(*during_));
    during.back()["step"] = "";
  }
  std::vector<const StepRecord*> sampled;
  for (const auto& s : steps_)
    if (s.during) sampled.push_back(&s);
  std::sort(sampled.begin(), sampled.end(),
            [](const auto* a, const auto* b) { return a->during->at < b->during->at; });
  for (const auto* s : sampled) {
    during.push_back(prom::to_json(*s->during));
    during.back()["step"] = s->name;
  }
  j["slo"]["during"] = std::move(during);
  if (slo_report_.recovery)
    j["recovery"] = {{"recovered", slo_report_.recovery->recovered},
                     {"duration_ms", slo_report_.recovery->duration.count()}};
  if (std::holds_alternative<experiment::Workflow>(doc_)) {
    j["phases"] = nlohmann::json::array();
    for (size_t i = 0; i < phases_.size(); ++i)
      j["phases"].push_back(phase_json(i, phases_[i], steps_));
  }
  return j;
}

bool Run::stopping() const {
  std::lock_guard lock(mu_);
  return stop_ != StopReason::kNone;
}

bool Run::sleep_for(nanoseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_ != StopReason::kNone; });
}

void Run::set_phase(std::string phase) {
  std::lock_guard lock(mu_);
  status_.set_phase(std::move(phase));
}

void Run::audit(audit::Action action, const std::string& actor, nlohmann::json details) {
  if (!deps_.audit) return;
  audit::Event ev{std::chrono::system_clock::now(), actor, action, sub_.id, std::move(details)};
  if (Status st = deps_.audit->append(ev); !st.ok())
    spdlog::error("{}: audit: {}", sub_.id, st.error().message());
}

void Run::stop(StopReason reason, const std::string& actor, const std::string& message) {
  if (reason == StopReason::kKillSwitch || reason == StopReason::kShutdown) hard_stop_ = true;
  {
    std::lock_guard lock(mu_);
    if (finished_ || stop_ != StopReason::kNone) return;
    stop_ = reason;
    stop_actor_ = actor;
    stop_message_ = message;
    status_.set_phase("stopping: " + message);
  }
  cv_.notify_all();
  spdlog::warn("{}: stopping ({}): {}", sub_.id, stop_reason_name(reason), message);
  if (reason == StopReason::kFailure) return;
  if (deps_.metrics) deps_.metrics->count_abort(stop_reason_name(reason));
  audit(audit::Action::kAbort, actor, {{"reason", stop_reason_name(reason)}, {"message", message}});
}

void Run::execute() {
  {
    std::lock_guard lock(mu_);
    started_ = SteadyClock::now();
    status_.set_state(v1::EXPERIMENT_STATE_RUNNING);
    status_.set_phase("starting");
  }
  if (deps_.metrics) deps_.metrics->experiment_started(kind_);
  (void)persist();
  // Renewed from the start: an Apply that lands carries the lease already.
  deps_.renewer->add(sub_.id, opts_.lease);
  Status result =
      std::holds_alternative<experiment::Experiment>(doc_) ? run_experiment() : run_workflow();
  finish(std::move(result));
}

void Run::guard_loop(const std::vector<prom::AbortRule>& rules) {
  prom::AbortRuleEvaluator evaluator(rules);
  while (true) {
    auto breach = evaluator.evaluate(*deps_.prom, SteadyClock::now());
    std::string message;
    {
      std::lock_guard lock(mu_);
      status_.clear_slo();
      for (size_t i = 0; i < rules.size(); ++i) {
        const auto& st = evaluator.states()[i];
        auto* v = status_.add_slo();
        v->set_name(rules[i].name.empty() ? rules[i].query : rules[i].name);
        v->set_bound(bound(rules[i].comparison, rules[i].threshold));
        v->set_has_value(st.last_value.has_value());
        v->set_value(st.last_value.value_or(0));
        v->set_status(std::string(prom::rule_status_name(st.status)));
      }
      if (breach && stop_ == StopReason::kNone) {
        const std::string name =
            breach->rule->name.empty() ? breach->rule->query : breach->rule->name;
        status_.set_abort_rule(name);
        status_.set_abort_value(breach->value);
        std::ostringstream ss;
        ss << "abort rule " << name << ": " << breach->value << " "
           << bound(breach->rule->comparison, breach->rule->threshold);
        message = ss.str();
      }
    }
    if (!message.empty()) {
      stop(StopReason::kRule, "controller", message);
      return;
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, opts_.abort_interval,
                     [this] { return stop_ != StopReason::kNone || guard_done_; }))
      return;
  }
}

Status Run::run_experiment() {
  const auto& exp = std::get<experiment::Experiment>(doc_);
  const auto checks = checks_from_rules(exp.abort_when);
  if (deps_.prom && !checks.empty()) {
    set_phase("pre-chaos SLO check");
    auto pre = prom::check_slos(*deps_.prom, checks, "pre-chaos");
    std::lock_guard lock(mu_);
    slo_report_.pre = std::move(pre);
  }
  std::thread guard;
  if (deps_.prom && !exp.abort_when.empty())
    guard = std::thread([this, &exp] { guard_loop(exp.abort_when); });
  Status st = run_chaos(exp, "", exp.duration, std::nullopt);
  {
    std::lock_guard lock(mu_);
    guard_done_ = true;
  }
  cv_.notify_all();
  if (guard.joinable()) guard.join();
  revert("");
  const auto reverted_at = SteadyClock::now();

  // Recovery: from the revert until the run's bounds hold again. Not after
  // the kill switch or a shutdown: whoever pulled it wants the controller
  // quiet, not polling.
  if (deps_.prom && !checks.empty() && !hard_stop_) {
    set_phase("measuring recovery");
    auto rec = prom::measure_recovery(*deps_.prom, checks, reverted_at, opts_.recovery,
                                      [this] { return hard_stop_.load(); });
    if (rec.recovered && deps_.metrics)
      deps_.metrics->observe_recovery(std::chrono::duration<double>(rec.duration).count());
    std::lock_guard lock(mu_);
    rec.last.phase = "post-chaos";
    slo_report_.post = rec.last;
    slo_report_.recovery = std::move(rec);
  }
  return st;
}

Status Run::run_chaos(const experiment::Experiment& exp, const std::string& step,
                      std::optional<nanoseconds> duration, std::optional<size_t> slot) {
  const std::string label = step.empty() ? "" : " " + step;
  set_phase("selecting" + label);
  const experiment::Lowered low = experiment::lower(exp);
  NQ_ASSIGN_OR_RETURN(auto agents, deps_.agents());

  // Phase one on every agent; an agent that does not answer makes the
  // selection incomplete, and a mode over part of the cluster is not what
  // the experiment asked for.
  auto resolve =
      [&](const v1::PodSelector& selector, const selection::ModeSpec& mode,
          const selection::BlastRadius& ceiling,
          std::map<std::string, std::string>* node_agent) -> Result<selection::Selection> {
    v1::ListTargetsRequest req;
    *req.mutable_selector() = selector;
    auto targets = deps_.fanout->list_targets(agents, req);
    if (!targets.errors.empty()) {
      std::string msg = "selection incomplete:";
      for (const auto& e : targets.errors) msg += " " + e.error.message() + ";";
      return Error::unavailable(msg);
    }
    std::vector<selection::NodePods> nodes;
    for (auto& n : targets.nodes) {
      if (node_agent) (*node_agent)[n.node] = n.agent;
      nodes.push_back({n.node, std::move(n.pods)});
    }
    auto sel = selection::select(nodes, mode, sub_.seed, ceiling);
    if (!sel.ok()) return std::move(sel).error().wrapped("selection");
    return sel;
  };

  selection::BlastRadius ceiling = opts_.ceiling;
  ceiling.force = ceiling.force || sub_.force;
  std::map<std::string, std::string> node_agent;
  NQ_ASSIGN_OR_RETURN(auto sel, resolve(low.selector, low.mode, ceiling, &node_agent));
  std::vector<v1::FaultSpec> faults = low.faults;
  if (low.target) {
    // Peers are not injected: no blast-radius ceiling on them.
    selection::BlastRadius peers_ceiling;
    peers_ceiling.force = true;
    NQ_ASSIGN_OR_RETURN(auto peers,
                        resolve(low.target->selector, low.target->mode, peers_ceiling, nullptr));
    std::vector<v1::Pod> pods;
    for (const auto& c : peers.chosen) pods.push_back(c.pod);
    NQ_ASSIGN_OR_RETURN(faults, experiment::scope_to_peers(faults, pods));
  }

  nlohmann::json chosen = nlohmann::json::array();
  {
    std::lock_guard lock(mu_);
    status_.set_candidates(sel.candidates);
    auto* s = status_.add_selections();
    s->set_step(step);
    s->set_mode(selection::describe(low.mode));
    s->set_candidates(sel.candidates);
    s->set_chosen(static_cast<uint32_t>(sel.chosen.size()));
    for (const auto& c : sel.chosen) {
      auto* p = status_.add_chosen();
      p->set_step(step);
      p->set_node(c.node);
      p->set_agent(node_agent[c.node]);
      p->set_namespace_(c.pod.ref().namespace_());
      p->set_name(c.pod.ref().name());
      chosen.push_back(c.pod.ref().namespace_() + "/" + c.pod.ref().name() + "@" + c.node);
    }
  }
  if (deps_.metrics) deps_.metrics->set_blast_radius(sub_.id, sel.percent() / 100.0);
  (void)persist();
  audit(audit::Action::kSelection, sub_.actor,
        {{"step", step},
         {"seed", sub_.seed},
         {"mode", selection::describe(low.mode)},
         {"candidates", sel.candidates},
         {"chosen", chosen}});
  if (stopping()) return ok();

  const nanoseconds ttl = duration ? *duration + opts_.ttl_margin : opts_.one_shot_ttl;
  std::vector<fanout::PlannedInjection> plan;
  std::vector<fanout::InjectionRef> planned;
  for (const auto& c : sel.chosen)
    for (size_t i = 0; i < faults.size(); ++i) {
      fanout::PlannedInjection p;
      p.agent = node_agent[c.node];
      *p.request.mutable_target()->mutable_pod() = c.pod.ref();
      for (const auto& name : low.containers) p.request.mutable_target()->add_containers(name);
      *p.request.mutable_spec() = faults[i];
      *p.request.mutable_ttl() = proto_duration(ttl);
      p.step = step_id(step, i, faults.size());
      // The id apply() would derive, chosen here so the record can name it
      // before the agent has it.
      NQ_ASSIGN_OR_RETURN(auto id, fanout::injection_id(sub_.id, c.pod.ref(), p.step));
      p.request.set_id(id);
      planned.push_back({p.agent, id, c.pod.ref()});
      plan.push_back(std::move(p));
    }
  // Write-ahead: what may exist on the agents is on disk before the first
  // Apply, so a controller that dies mid-fan-out knows what to revert.
  {
    std::lock_guard lock(mu_);
    journal_[step] = planned;
  }
  if (Status st = persist(true); !st.ok()) {
    std::lock_guard lock(mu_);
    journal_.erase(step);
    return std::move(st).error().wrapped("record" + label + " before injecting");
  }
  set_phase("injecting" + label);
  fanout::ApplyReport rep = deps_.fanout->apply(std::move(plan), {sub_.id, opts_.lease, true});
  if (rep.error) {
    // What the rollback could not revert stays recorded (the lease reverts
    // it on the agent; a restarted controller sends Revert again).
    std::vector<fanout::InjectionRef> left;
    for (const auto& o : rep.rollback)
      if (o.error) left.push_back(o.ref);
    {
      std::lock_guard lock(mu_);
      if (left.empty())
        journal_.erase(step);
      else
        journal_[step] = std::move(left);
    }
    (void)persist();
    audit(audit::Action::kInject, sub_.actor,
          {{"step", step}, {"ok", false}, {"error", rep.error->message()}});
    return Error(*rep.error).wrapped("inject" + label);
  }
  auto refs = rep.applied();
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& r : refs) ids.push_back({{"agent", r.agent}, {"id", r.id}});
  {
    std::lock_guard lock(mu_);
    applied_.push_back({step, refs});
    status_.set_injections(status_.injections() + refs.size());
    if (slot) steps_[*slot].injections += refs.size();
  }
  if (deps_.metrics) deps_.metrics->add_injected(static_cast<double>(refs.size()));
  audit(audit::Action::kInject, sub_.actor, {{"step", step}, {"ok", true}, {"injections", ids}});

  if (duration) {
    set_phase("running" + label);
    (void)sleep_for(*duration);
  }
  // The SLOs with the faults still in place: the report's "during".
  if (!hard_stop_) {
    auto during = sample_slos("during" + label);
    std::lock_guard lock(mu_);
    if (slot)
      steps_[*slot].during = std::move(during);
    else
      during_ = std::move(during);
  }
  revert(step);
  return ok();
}

std::optional<prom::SloPhase> Run::sample_slos(const std::string& label) {
  if (!deps_.prom || slos_.empty()) return std::nullopt;
  return prom::check_slos(*deps_.prom, slos_, label);
}

void Run::revert(const std::string& step) {
  std::vector<fanout::InjectionRef> refs;
  {
    std::lock_guard lock(mu_);
    for (auto it = applied_.begin(); it != applied_.end();) {
      if (it->step == step) {
        refs.insert(refs.end(), it->refs.begin(), it->refs.end());
        it = applied_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (refs.empty()) return;
  auto outcomes = deps_.fanout->revert(refs);
  nlohmann::json failures = nlohmann::json::array();
  std::vector<fanout::InjectionRef> left;
  for (const auto& o : outcomes)
    if (o.error) {
      failures.push_back(o.ref.agent + " " + o.ref.id + ": " + o.error->message());
      left.push_back(o.ref);
    }
  {
    std::lock_guard lock(mu_);
    status_.set_injections(status_.injections() -
                           std::min<uint32_t>(status_.injections(), refs.size()));
    if (left.empty())
      journal_.erase(step);
    else
      journal_[step] = std::move(left);
  }
  (void)persist();
  if (deps_.metrics) deps_.metrics->add_injected(-static_cast<double>(refs.size()));
  // A revert that failed is reverted by the agent when the lease runs out
  // (the renewer stops renewing when the run ends).
  audit(audit::Action::kRevert, sub_.actor,
        {{"step", step}, {"reverted", refs.size() - failures.size()}, {"failures", failures}});
}

Status Run::run_workflow() {
  const auto& wf = std::get<experiment::Workflow>(doc_);
  NQ_ASSIGN_OR_RETURN(auto plan, experiment::plan_workflow(wf));
  {
    std::lock_guard lock(mu_);
    estimate_ = experiment::estimated_duration(wf, plan);
    plan_records(wf, plan, phases_, steps_);
  }
  std::thread guard;
  if (deps_.prom && !wf.abort_when.empty())
    guard = std::thread([this, &wf] { guard_loop(wf.abort_when); });

  std::mutex failure_mu;
  std::optional<Error> failure;
  // `slots`: the lane's step records, in the lane's order.
  auto run_lane = [&](const experiment::Lane& lane, std::vector<size_t> slots) {
    for (size_t i = 0; i < lane.steps.size(); ++i) {
      if (stopping()) return;
      const size_t idx = lane.steps[i];
      {
        std::lock_guard lock(mu_);
        steps_[slots[i]].started = std::chrono::system_clock::now();
      }
      Status st = run_step(wf, idx, slots[i]);
      {
        std::lock_guard lock(mu_);
        auto& rec = steps_[slots[i]];
        rec.ended = std::chrono::system_clock::now();
        rec.outcome = !st.ok()                     ? "failed: " + st.error().message()
                      : stop_ != StopReason::kNone ? "stopped"
                                                   : "ok";
      }
      if (!st.ok()) {
        Error e = std::move(st).error().wrapped("step " + wf.templates[idx].name);
        {
          std::lock_guard lock(failure_mu);
          if (!failure) failure = e;
        }
        // The other lanes stop and revert too (a no-op when the step already
        // stopped the run, as a failing SLO check does).
        stop(StopReason::kFailure, "controller", e.message());
        return;
      }
    }
  };
  for (size_t p = 0; p < plan.phases.size() && !stopping(); ++p) {
    const auto& phase = plan.phases[p];
    std::string names;
    for (const auto& lane : phase.lanes)
      for (size_t idx : lane.steps) names += (names.empty() ? "" : ", ") + wf.templates[idx].name;
    set_phase("phase " + std::to_string(p + 1) + "/" + std::to_string(plan.phases.size()) + ": " +
              names);
    auto before = sample_slos("before phase " + std::to_string(p + 1));
    std::vector<std::vector<size_t>> slots(phase.lanes.size());
    {
      std::lock_guard lock(mu_);
      phases_[p].started = std::chrono::system_clock::now();
      phases_[p].before = std::move(before);
      for (size_t i = 0; i < steps_.size(); ++i)
        if (steps_[i].phase == p) slots[steps_[i].lane].push_back(i);
    }
    if (phase.lanes.size() == 1) {
      run_lane(phase.lanes[0], slots[0]);
    } else {
      std::vector<std::thread> lanes;
      for (size_t l = 0; l < phase.lanes.size(); ++l)
        lanes.emplace_back([&, l] { run_lane(phase.lanes[l], slots[l]); });
      for (auto& t : lanes) t.join();
    }
    {
      std::lock_guard lock(mu_);
      phases_[p].ended = std::chrono::system_clock::now();
    }
    measure_after_phase(p);
  }
  {
    std::lock_guard lock(mu_);
    guard_done_ = true;
  }
  cv_.notify_all();
  if (guard.joinable()) guard.join();
  if (failure) return *failure;
  return ok();
}

void Run::measure_after_phase(size_t p) {
  // Not after the kill switch or a shutdown: whoever pulled it wants the
  // controller quiet, not polling.
  if (!deps_.prom || slos_.empty() || hard_stop_) return;
  bool injects = false;
  std::optional<WallTime> during_at;
  std::optional<prom::SloPhase> during;
  {
    std::lock_guard lock(mu_);
    injects = phases_[p].injects;
    // The phase's "during": the first of its steps to be sampled, while the
    // faults of the other lanes were most likely still in place too.
    for (const auto& s : steps_)
      if (s.phase == p && s.during && (!during_at || s.during->at < *during_at)) {
        during_at = s.during->at;
        during = s.during;
      }
    phases_[p].during = std::move(during);
  }
  const std::string label = "after phase " + std::to_string(p + 1);
  if (!injects) {
    auto after = sample_slos(label);
    std::lock_guard lock(mu_);
    phases_[p].after = std::move(after);
    return;
  }
  set_phase("measuring recovery after phase " + std::to_string(p + 1));
  auto rec = prom::measure_recovery(*deps_.prom, slos_, SteadyClock::now(), opts_.recovery,
                                    [this] { return hard_stop_.load(); });
  if (rec.recovered && deps_.metrics)
    deps_.metrics->observe_recovery(std::chrono::duration<double>(rec.duration).count());
  rec.last.phase = label;
  std::lock_guard lock(mu_);
  phases_[p].after = rec.last;
  phases_[p].recovery = std::move(rec);
}

Status Run::run_step(const experiment::Workflow& wf, size_t index, size_t slot) {
  const auto& t = wf.templates[index];
  switch (t.type) {
    case experiment::TemplateType::kChaos:
      return run_chaos(*t.chaos, t.name, t.deadline ? t.deadline : t.chaos->duration, slot);
    case experiment::TemplateType::kSuspend:
      (void)sleep_for(t.deadline.value_or(nanoseconds(0)));
      return ok();
    case experiment::TemplateType::kSloCheck:
      return run_slo_step(t);
    case experiment::TemplateType::kReport:
      return write_report(t.report_path);
    default:
      return Error::internal("template " + t.name + " is not a step");
  }
}

Status Run::run_slo_step(const experiment::Template& t) {
  if (!deps_.prom)
    return Error::failed_precondition("SLOCheck needs Prometheus (--prometheus-url)");
  prom::SloPhase phase;
  if (t.within.count() == 0) {
    phase = prom::check_slos(*deps_.prom, t.checks, t.name);
  } else {
    prom::RecoveryOptions ro{std::chrono::duration_cast<milliseconds>(t.interval),
                             std::chrono::duration_cast<milliseconds>(t.within)};
    auto rec = prom::measure_recovery(*deps_.prom, t.checks, SteadyClock::now(), ro,
                                      [this] { return stopping(); });
    if (rec.recovered && deps_.metrics)
      deps_.metrics->observe_recovery(std::chrono::duration<double>(rec.duration).count());
    rec.last.phase = t.name;
    phase = rec.last;
    std::lock_guard lock(mu_);
    slo_report_.recovery = std::move(rec);
  }
  std::string failed;
  std::optional<prom::SloResult> first_failed;
  {
    std::lock_guard lock(mu_);
    status_.clear_slo();
    for (const auto& r : phase.results) {
      auto* v = status_.add_slo();
      v->set_name(r.name);
      v->set_bound(r.bound);
      v->set_has_value(r.value.has_value());
      v->set_value(r.value.value_or(0));
      v->set_status(r.passed ? "pass" : "fail");
      if (!r.passed) {
        if (!first_failed) first_failed = r;
        std::ostringstream ss;
        ss << (failed.empty() ? "" : ", ") << r.name << " ";
        if (r.value)
          ss << *r.value << " not " << r.bound;
        else
          ss << r.error;
        failed += ss.str();
      }
    }
    if (!slo_report_.pre)
      slo_report_.pre = phase;
    else
      slo_report_.post = phase;
  }
  if (failed.empty()) return ok();
  // A check out of bounds is the guard doing its job, not a malfunction: the
  // workflow is Aborted (like by an abort rule) and everything reverted.
  const std::string message = "SLO check " + t.name + " failed: " + failed;
  {
    std::lock_guard lock(mu_);
    if (stop_ == StopReason::kNone) {
      status_.set_abort_rule(first_failed->name);
      status_.set_abort_value(first_failed->value.value_or(0));
    }
  }
  stop(StopReason::kSloCheck, "controller", message);
  return Error::failed_precondition(message);
}

Status Run::write_report(const std::string& path) {
  std::string text, table;
  {
    std::lock_guard lock(mu_);
    has_report_ = true;
    text = report_json().dump(2) + "\n";
    table = report_table();
    if (!path.empty() &&
        std::find(report_paths_.begin(), report_paths_.end(), path) == report_paths_.end())
      report_paths_.push_back(path);
  }
  std::vector<std::filesystem::path> files;
  if (!opts_.report_dir.empty()) {
    // The table too: `nqctl report` of a run from before a restart.
    NQ_TRY(write_file_atomic(opts_.report_dir / (sub_.id + ".txt"), table));
    files.push_back(opts_.report_dir / (sub_.id + ".json"));
  }
  if (!path.empty()) files.push_back(path);
  // Temporary file and rename: a reader never sees half a report.
  for (const auto& f : files) NQ_TRY(write_file_atomic(f, text));
  return ok();
}

Status Run::persist(bool required) {
  if (!deps_.store) return ok();
  std::lock_guard persist_lock(persist_mu_);
  v1::ExperimentRecord record;
  record.set_version(1);
  {
    std::lock_guard lock(mu_);
    *record.mutable_status() = status_;
    if (status_.state() == v1::EXPERIMENT_STATE_RUNNING)
      record.mutable_status()->set_elapsed_ms(ms(SteadyClock::now() - started_));
    record.mutable_status()->set_has_report(has_report_);
    for (const auto& [step, refs] : journal_)
      for (const auto& r : refs) {
        auto* i = record.add_injections();
        i->set_agent(r.agent);
        i->set_id(r.id);
      }
  }
  Status st = deps_.store->save(record);
  if (!st.ok() && !required) spdlog::error("{}: record: {}", sub_.id, st.error().message());
  return st;
}

void Run::finish(Status result) {
  deps_.renewer->remove(sub_.id);
  // Whatever is still applied (a step interrupted between apply and revert).
  std::vector<std::string> steps;
  {
    std::lock_guard lock(mu_);
    for (const auto& a : applied_) steps.push_back(a.step);
  }
  for (const auto& s : steps) revert(s);

  v1::ExperimentState state;
  std::string message;
  {
    std::lock_guard lock(mu_);
    switch (stop_) {
      case StopReason::kRule:
      case StopReason::kOperator:
      case StopReason::kSloCheck:
        state = v1::EXPERIMENT_STATE_ABORTED;
        message = stop_message_;
        break;
      case StopReason::kKillSwitch:
      case StopReason::kShutdown:
        state = v1::EXPERIMENT_STATE_REVERTED;
        message = stop_message_;
        break;
      default:
        state = result.ok() ? v1::EXPERIMENT_STATE_SUCCEEDED : v1::EXPERIMENT_STATE_FAILED;
        if (!result.ok()) message = result.error().message();
    }
  }
  // The metrics first: whoever sees the final state (Get) sees them counted.
  if (deps_.metrics) {
    deps_.metrics->experiment_finished(kind_, state_name(state));
    deps_.metrics->clear_blast_radius(sub_.id);
  }
  std::vector<std::string> report_paths;
  {
    std::lock_guard lock(mu_);
    if (!message.empty()) status_.set_message(message);
    status_.set_state(state);
    status_.set_phase("done");
    status_.set_elapsed_ms(ms(SteadyClock::now() - started_));
    status_.set_remaining_ms(0);
    *status_.mutable_ended_at() = TimeUtil::GetCurrentTime();
    report_paths = report_paths_;
  }
  // The state dir's copy, and the Report steps' files again: with the
  // outcome, and the phases that ran after them.
  if (Status st = write_report(""); !st.ok())
    spdlog::error("{}: report: {}", sub_.id, st.error().message());
  for (const auto& p : report_paths)
    if (Status st = write_report(p); !st.ok())
      spdlog::error("{}: report {}: {}", sub_.id, p, st.error().message());
  (void)persist();
  spdlog::info("{}: {}{}", sub_.id, state_name(state),
               result.ok() ? "" : ": " + result.error().message());
  {
    std::lock_guard lock(mu_);
    finished_ = true;
  }
  cv_.notify_all();
}

}  // namespace nq::controller
