#include "controller/experiment/summary.h"

#include <cstdio>

#include "common/duration.h"
#include "common/units.h"

namespace nq::experiment {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string selector_text(const Selector& s) {
  std::string out;
  if (!s.namespaces.empty()) {
    out += "[";
    for (size_t i = 0; i < s.namespaces.size(); ++i) out += (i ? "," : "") + s.namespaces[i];
    out += "]";
  }
  for (const auto& [k, v] : s.labels) out += (out.empty() ? "" : " ") + k + "=" + v;
  for (const LabelRequirement& r : s.expressions)
    out += (out.empty() ? "" : " ") + r.key + " " + r.op;
  return out;
}

std::string network_text(const NetworkSpec& n) {
  std::string out;
  auto add = [&](const std::string& s) { out += (out.empty() ? "" : ", ") + s; };
  if (n.delay) {
    std::string d = "delay " + format_duration(n.delay->latency);
    if (n.delay->jitter.count()) d += " ±" + format_duration(n.delay->jitter);
    if (n.delay->correlation) d += " (corr " + num(n.delay->correlation) + "%)";
    if (n.delay->reorder) d += " reorder " + num(n.delay->reorder->percent) + "%";
    add(d);
  }
  if (n.loss) add("loss " + num(n.loss->percent) + "%");
  if (n.duplicate) add("duplicate " + num(n.duplicate->percent) + "%");
  if (n.corrupt) add("corrupt " + num(n.corrupt->percent) + "%");
  if (n.bandwidth) add("bandwidth " + format_rate(static_cast<double>(n.bandwidth->rate_bps)));
  if (n.action == NetworkAction::kPartition) add("partition");
  if (n.engine == NetemEngine::kNetem) out += " (engine netem)";
  if (n.engine == NetemEngine::kEbpf) out += " (engine ebpf)";
  out += " direction " + std::string(direction_name(n.direction));
  if (n.target)
    out += " peers " + selector_text(n.target->selector) + " (" +
           selection::describe(n.target->mode) + ")";
  if (!n.external_targets.empty())
    out += " + " + std::to_string(n.external_targets.size()) + " external CIDR(s)";
  return out;
}

std::string spec_text(const Experiment& exp) {
  if (const auto* n = std::get_if<NetworkSpec>(&exp.spec)) return network_text(*n);
  if (const auto* s = std::get_if<StressSpec>(&exp.spec)) {
    std::string out;
    if (s->cpu)
      out += "cpu " + num(s->cpu->load) + "% of the limit" +
             (s->cpu->workers ? " (" + std::to_string(s->cpu->workers) + " workers)" : "");
    if (s->memory) {
      if (!out.empty()) out += ", ";
      out += "memory " + (s->memory->percent > 0
                              ? num(s->memory->percent * s->memory->workers) + "% of the limit"
                              : std::to_string(s->memory->bytes * s->memory->workers) + " bytes");
    }
    return out;
  }
  if (const auto* io = std::get_if<IoSpec>(&exp.spec)) {
    std::string out = std::string(io_action_name(io->action)) + " " + io->effective_path();
    if (io->action == IoAction::kFault)
      out += " " + io->error + " on " + num(io->percent) + "% of calls";
    return out;
  }
  const auto& pod = std::get<PodSpec>(exp.spec);
  std::string out(pod_action_name(pod.action));
  for (size_t i = 0; i < pod.containers.size(); ++i) out += (i ? "," : " ") + pod.containers[i];
  return out;
}

std::string rules_text(size_t n) {
  return n == 0 ? "" : "; " + std::to_string(n) + (n == 1 ? " abort rule" : " abort rules");
}

}  // namespace

std::string summarize(const Experiment& exp) {
  std::string out(kind_name(exp.kind));
  out += " " + (exp.namespace_.empty() ? exp.name : exp.namespace_ + "/" + exp.name) + ": ";
  out += spec_text(exp);
  out += "; mode " + selection::describe(exp.mode) + " of " + selector_text(exp.selector);
  out += "; " + (exp.duration ? format_duration(*exp.duration) : std::string("one-shot"));
  out += rules_text(exp.abort_when.size());
  return out;
}

std::string summarize(const Workflow& wf, const Plan& plan) {
  size_t steps = 0, chaos = 0, checks = 0;
  for (const Phase& p : plan.phases)
    for (const Lane& l : p.lanes)
      for (size_t s : l.steps) {
        ++steps;
        chaos += wf.templates[s].type == TemplateType::kChaos;
        checks += wf.templates[s].type == TemplateType::kSloCheck;
      }
  std::string out = "Workflow " + (wf.namespace_.empty() ? wf.name : wf.namespace_ + "/" + wf.name);
  out += ": " + std::to_string(plan.phases.size()) + " phases, " + std::to_string(steps) +
         " steps (" + std::to_string(chaos) + " chaos, " + std::to_string(checks) +
         " SLO checks), at most " + format_duration(estimated_duration(wf, plan));
  out += rules_text(wf.abort_when.size());
  return out;
}

}  // namespace nq::experiment
