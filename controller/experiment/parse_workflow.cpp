// Workflow: Chaos Mesh's Workflow shape (entry + templates with templateType,
// deadline, children and an embedded chaos spec), plus SLOCheck and Report
// templates in place of Chaos Mesh's StatusCheck and Argo's script steps.
#include <set>

#include "controller/experiment/parse_internal.h"
#include "controller/experiment/workflow_plan.h"

namespace nq::experiment::detail {
namespace {

struct ChaosField {
  std::string_view type;  // templateType
  std::string_view key;   // embedded spec field
  Kind kind;
};

constexpr ChaosField kChaosFields[] = {
    {"NetworkChaos", "networkChaos", Kind::kNetworkChaos},
    {"StressChaos", "stressChaos", Kind::kStressChaos},
    {"IOChaos", "ioChaos", Kind::kIOChaos},
    {"PodChaos", "podChaos", Kind::kPodChaos},
};

bool valid_name(const std::string& name) {
  // Kubernetes DNS-1123 label: what Chaos Mesh requires of template names.
  if (name.empty() || name.size() > 63) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return name.front() != '-' && name.back() != '-';
}

void parse_slo_check(Fields& tf, Template& t) {
  YAML::Node n = tf.take("sloCheck");
  if (!n.IsDefined()) {
    tf.required("sloCheck");
    return;
  }
  Fields f(tf.diag(), n, tf.path_of("sloCheck"));
  t.within = f.duration("within").value_or(nanoseconds(0));
  t.interval = f.duration("interval").value_or(std::chrono::seconds(5));
  if (t.interval.count() == 0)
    f.error(f.take("interval"), f.path_of("interval"), "must be above 0");
  YAML::Node checks = f.take("checks");
  if (!checks.IsDefined()) {
    f.required("checks");
  } else if (!checks.IsSequence() || checks.size() == 0) {
    f.error(checks, f.path_of("checks"),
            "must be a non-empty list of {query, operator, threshold}");
  } else {
    for (size_t i = 0; i < checks.size(); ++i) {
      Fields c(tf.diag(), checks[i], f.path_of("checks") + "[" + std::to_string(i) + "]");
      SloCheck check;
      check.query = c.str("query", true).value_or("");
      check.name = c.str("name").value_or(check.query);
      // No default: whether an SLO is "below" or "above" is not guessable.
      check.comparison = parse_comparison(c, "operator").value_or(Comparison::kLess);
      if (!c.has("operator")) c.required("operator");
      check.threshold = c.number("threshold", true).value_or(0);
      c.finish();
      t.checks.push_back(std::move(check));
    }
  }
  f.finish();
}

void parse_template(Fields& tf, const Workflow& wf, Template& t) {
  Diagnostics& diag = tf.diag();
  t.line = tf.line();
  const YAML::Node name_node = tf.take("name");
  t.name = tf.str("name", true).value_or("");
  if (!t.name.empty() && !valid_name(t.name))
    tf.error(name_node, tf.path_of("name"),
             "\"" + t.name + "\" must be lowercase letters, digits and '-' (at most 63)");
  const YAML::Node deadline_node = tf.take("deadline");
  t.deadline = tf.duration("deadline");
  if (t.deadline && t.deadline->count() == 0)
    tf.error(deadline_node, tf.path_of("deadline"), "must be above 0");

  const YAML::Node type_node = tf.take("templateType");
  std::optional<std::string> type = tf.str("templateType", true);
  const ChaosField* chaos = nullptr;
  bool type_ok = true;
  if (type) {
    if (*type == "Serial")
      t.type = TemplateType::kSerial;
    else if (*type == "Parallel")
      t.type = TemplateType::kParallel;
    else if (*type == "Suspend")
      t.type = TemplateType::kSuspend;
    else if (*type == "SLOCheck")
      t.type = TemplateType::kSloCheck;
    else if (*type == "Report")
      t.type = TemplateType::kReport;
    else {
      for (const ChaosField& c : kChaosFields)
        if (*type == c.type) chaos = &c;
      if (chaos != nullptr) {
        t.type = TemplateType::kChaos;
      } else {
        type_ok = false;
        std::string why = "\"" + *type +
                          "\" is not one of: Serial, Parallel, Suspend, NetworkChaos, StressChaos, "
                          "IOChaos, PodChaos, SLOCheck, Report";
        if (*type == "StatusCheck")
          why =
              "not supported by nodequake: StatusCheck (HTTP probes); use SLOCheck with "
              "Prometheus queries";
        else if (*type == "Task")
          why =
              "not supported by nodequake: Task (arbitrary containers); the controller runs no "
              "workloads";
        else if (*type == "Schedule")
          why = "not supported by nodequake: Schedule; run the workflow from cron or CI";
        tf.error(type_node, tf.path_of("templateType"), why);
      }
    }
  } else {
    type_ok = false;
  }

  // Every template-specific field is read whatever the type, so that a field
  // in the wrong template is reported as such rather than as unknown.
  const YAML::Node children_node = tf.take("children");
  auto children = tf.str_list("children");
  if (type_ok && (t.type == TemplateType::kSerial || t.type == TemplateType::kParallel)) {
    if (!children_node.IsDefined())
      tf.required("children");
    else if (children && children->empty())
      tf.error(children_node, tf.path_of("children"), "must name at least one template");
    t.children = children.value_or(std::vector<std::string>{});
  } else if (type_ok && children_node.IsDefined()) {
    tf.error(children_node, tf.path_of("children"), "only used by Serial and Parallel templates");
  }

  for (const ChaosField& c : kChaosFields) {
    YAML::Node n = tf.take(c.key);
    if (!n.IsDefined()) continue;
    if (type_ok && &c != chaos) {
      tf.error(n, tf.path_of(c.key),
               "only used by templateType " + std::string(c.type) + " (this template is " +
                   type.value_or("") + ")");
      continue;
    }
    if (!type_ok) continue;
    Experiment exp;
    exp.where = {diag.file(), line_of(n)};
    exp.api_version = wf.api_version;
    exp.kind = c.kind;
    exp.name = wf.name + "." + t.name;
    exp.namespace_ = wf.namespace_;
    Fields spec(diag, n, tf.path_of(c.key));
    const size_t before = diag.size();
    parse_chaos_spec(spec, exp);
    if (diag.size() == before) {
      // Chaos Mesh takes a chaos step's length from the template's deadline;
      // the embedded duration is accepted when it agrees.
      if (t.deadline && exp.duration && *t.deadline != *exp.duration)
        diag.add(t.line, tf.path_of("deadline"),
                 "differs from " + tf.path_of(c.key) + ".duration; give one of them");
      if (!t.deadline) t.deadline = exp.duration;
      if (!t.deadline && !is_one_shot(exp))
        diag.add(t.line, tf.path_of("deadline"),
                 "is required for a " + std::string(c.type) + " step (how long the fault lasts)");
      exp.duration = t.deadline;
      t.chaos = std::move(exp);
    }
  }
  if (type_ok && chaos != nullptr && !tf.has(chaos->key)) tf.required(chaos->key);

  if (type_ok && t.type == TemplateType::kSloCheck) {
    parse_slo_check(tf, t);
  } else if (YAML::Node n = tf.take("sloCheck"); n.IsDefined() && type_ok) {
    tf.error(n, tf.path_of("sloCheck"), "only used by templateType SLOCheck");
  }

  YAML::Node report = tf.take("report");
  if (type_ok && t.type == TemplateType::kReport) {
    if (report.IsDefined()) {
      Fields rf(diag, report, tf.path_of("report"));
      t.report_path = rf.str("path").value_or("");
      rf.finish();
    }
  } else if (report.IsDefined() && type_ok) {
    tf.error(report, tf.path_of("report"), "only used by templateType Report");
  }

  if (type_ok && t.type == TemplateType::kSuspend && !t.deadline) tf.required("deadline");
  tf.reject("abortWithStatusCheck", "put abortWhen rules on the workflow or on the chaos step");
  tf.reject("conditionalBranches", "workflows here are serial and parallel steps only");
  tf.reject("task", "Task templates");
  tf.reject("statusCheck", "use SLOCheck");
  tf.reject("schedule", "Schedule templates");
  tf.finish();
}

}  // namespace

bool parse_workflow_spec(Fields& spec, Workflow& wf) {
  Diagnostics& diag = spec.diag();
  const size_t before = diag.size();
  wf.entry_line = line_of(spec.take("entry"));
  wf.entry = spec.str("entry", true).value_or("");
  wf.abort_when = parse_abort_rules(spec);
  YAML::Node list = spec.take("templates");
  if (!list.IsDefined()) {
    spec.required("templates");
  } else if (!list.IsSequence() || list.size() == 0) {
    spec.error(list, "spec.templates", "must be a non-empty list");
  } else {
    std::set<std::string> names;
    for (size_t i = 0; i < list.size(); ++i) {
      Fields tf(diag, list[i], "spec.templates[" + std::to_string(i) + "]");
      Template t;
      parse_template(tf, wf, t);
      if (!t.name.empty() && !names.insert(t.name).second)
        diag.add(t.line, tf.path_of("name"), "\"" + t.name + "\" names two templates");
      wf.templates.push_back(std::move(t));
    }
  }
  spec.finish();
  // References, cycles and nesting are checked even when a template had
  // errors of its own, so that one run reports everything.
  if (!wf.entry.empty() && !wf.templates.empty()) (void)plan_workflow(wf, diag);
  return diag.size() == before;
}

}  // namespace nq::experiment::detail
