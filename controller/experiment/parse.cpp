// Documents, metadata, selectors, modes and abort rules; the kinds' own
// fields are in parse_chaos.cpp, workflows in parse_workflow.cpp.
#include "controller/experiment/parse.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "controller/experiment/parse_internal.h"

namespace nq::experiment {
namespace detail {

std::optional<Comparison> parse_comparison(Fields& f, std::string_view key) {
  return f.choice<Comparison>(key, {{">", Comparison::kGreater},
                                    {">=", Comparison::kGreaterEqual},
                                    {"<", Comparison::kLess},
                                    {"<=", Comparison::kLessEqual},
                                    {"==", Comparison::kEqual},
                                    {"!=", Comparison::kNotEqual}});
}

std::vector<AbortRule> parse_abort_rules(Fields& f) {
  std::vector<AbortRule> rules;
  YAML::Node list = f.take("abortWhen");
  if (!list.IsDefined()) return rules;
  if (!list.IsSequence()) {
    f.error(list, f.path_of("abortWhen"), "must be a list of {query, threshold, for}");
    return rules;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    Fields r(f.diag(), list[i], f.path_of("abortWhen") + "[" + std::to_string(i) + "]");
    AbortRule rule;
    rule.query = r.str("query", true).value_or("");
    rule.name = r.str("name").value_or(rule.query);
    rule.comparison = parse_comparison(r, "operator").value_or(Comparison::kGreater);
    rule.threshold = r.number("threshold", true).value_or(0);
    rule.for_duration = r.duration("for").value_or(nanoseconds(0));
    r.finish();
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::optional<Selector> parse_selector(Diagnostics& diag, const YAML::Node& node,
                                       const std::string& path) {
  const size_t before = diag.size();
  Fields f(diag, node, path);
  Selector sel;
  sel.namespaces = f.str_list("namespaces").value_or(std::vector<std::string>{});
  sel.labels = f.str_map("labelSelectors").value_or(std::map<std::string, std::string>{});
  if (YAML::Node exprs = f.take("expressionSelectors"); exprs.IsDefined()) {
    if (!exprs.IsSequence()) {
      f.error(exprs, f.path_of("expressionSelectors"), "must be a list of {key, operator, values}");
    } else {
      for (size_t i = 0; i < exprs.size(); ++i) {
        const std::string p = f.path_of("expressionSelectors") + "[" + std::to_string(i) + "]";
        Fields e(diag, exprs[i], p);
        LabelRequirement req;
        req.key = e.str("key", true).value_or("");
        req.op = e.choice<std::string>("operator",
                                       {{"In", "In"},
                                        {"NotIn", "NotIn"},
                                        {"Exists", "Exists"},
                                        {"DoesNotExist", "DoesNotExist"}},
                                       true)
                     .value_or("");
        auto values = e.str_list("values");
        const bool wants_values = req.op == "In" || req.op == "NotIn";
        // The API server's rules: In/NotIn need values, Exists/DoesNotExist take none.
        if (wants_values && (!values || values->empty()))
          diag.add(e.line(), p + ".values", "operator " + req.op + " needs at least one value");
        if (!req.op.empty() && !wants_values && values && !values->empty())
          diag.add(e.line(), p + ".values", "operator " + req.op + " takes no values");
        req.values = values.value_or(std::vector<std::string>{});
        e.finish();
        sel.expressions.push_back(std::move(req));
      }
    }
  }
  // The agents select by namespace and labels only; these Chaos Mesh
  // selectors need the Kubernetes API, which nodequake does not talk to.
  f.reject("pods", "select pods by namespace and labels (the agents know pods by their labels)");
  f.reject("nodes", "nodequake selects pods, not nodes");
  f.reject("nodeSelectors", "nodequake selects pods, not nodes");
  f.reject("fieldSelectors", "use labelSelectors or expressionSelectors");
  f.reject("annotationSelectors", "use labelSelectors or expressionSelectors");
  f.reject("podPhaseSelectors", "the agents only report running pods");
  f.finish();
  if (f.is_map() && sel.namespaces.empty() && sel.labels.empty() && sel.expressions.empty())
    diag.add(f.line(), path,
             "must name namespaces or labels (an empty selector matches every opted-in pod)");
  if (diag.size() != before) return std::nullopt;
  return sel;
}

std::optional<selection::ModeSpec> parse_mode(Fields& f, bool required) {
  auto mode =
      f.choice<selection::Mode>("mode",
                                {{"one", selection::Mode::kOne},
                                 {"all", selection::Mode::kAll},
                                 {"fixed", selection::Mode::kFixed},
                                 {"fixed-percent", selection::Mode::kFixedPercent},
                                 {"random-max-percent", selection::Mode::kRandomMaxPercent}},
                                required);
  YAML::Node value = f.take("value");
  if (!mode) return std::nullopt;
  selection::ModeSpec spec{*mode, 0};
  const bool wants_value = *mode == selection::Mode::kFixed ||
                           *mode == selection::Mode::kFixedPercent ||
                           *mode == selection::Mode::kRandomMaxPercent;
  const std::string field = f.path_of("value");
  if (!wants_value) {
    if (value.IsDefined()) {
      f.error(value, field, "not used by mode " + std::string(selection::mode_name(*mode)));
      return std::nullopt;
    }
    return spec;
  }
  if (!value.IsDefined()) {
    f.diag().add(f.line(), field,
                 "is required by mode " + std::string(selection::mode_name(*mode)));
    return std::nullopt;
  }
  if (!value.IsScalar()) {
    f.error(value, field, "must be a single value");
    return std::nullopt;
  }
  std::string text = value.Scalar();
  const bool percent_mode = *mode != selection::Mode::kFixed;
  if (percent_mode && !text.empty() && text.back() == '%') text.pop_back();
  auto n = parse_uint(text);
  // Chaos Mesh reads value with strconv.Atoi: whole numbers only.
  if (!n || *n > 1000000) {
    f.error(value, field,
            "\"" + value.Scalar() + "\" is not a whole number" +
                (percent_mode ? " (a percentage, e.g. \"30\")" : " (a pod count)"));
    return std::nullopt;
  }
  spec.value = static_cast<uint32_t>(*n);
  if (auto st = selection::validate(spec, field); !st.ok()) {
    std::string m = st.error().message();
    m.erase(0, field.size() + 2);
    f.error(value, field, m);
    return std::nullopt;
  }
  return spec;
}

}  // namespace detail

namespace {

constexpr std::string_view kUnsupportedKinds[] = {
    "DNSChaos", "TimeChaos",  "HTTPChaos",  "KernelChaos",          "JVMChaos", "AWSChaos",
    "GCPChaos", "AzureChaos", "BlockChaos", "PhysicalMachineChaos", "Schedule", "StatusCheck"};

void parse_document(Diagnostics& diag, const YAML::Node& doc, Parsed& out) {
  const size_t before = diag.size();
  Fields top(diag, doc, "");
  if (!top.is_map()) return;
  auto api = top.choice<std::string>("apiVersion",
                                     {{kApiVersion, std::string(kApiVersion)},
                                      {kChaosMeshApiVersion, std::string(kChaosMeshApiVersion)}},
                                     true);
  YAML::Node kind_node = top.take("kind");
  std::optional<std::string> kind = top.str("kind", true);
  std::string name, ns;
  if (YAML::Node meta = top.take("metadata"); meta.IsDefined()) {
    Fields m(diag, meta, "metadata");
    name = m.str("name", true).value_or("");
    ns = m.str("namespace").value_or("");
    (void)m.str_map("labels");  // accepted as in Kubernetes, not used
    (void)m.str_map("annotations");
    m.reject("generateName", "experiments need a stable name for abort and audit");
    m.finish();
  } else {
    top.required("metadata");
  }
  YAML::Node spec_node = top.take("spec");
  if (!spec_node.IsDefined()) top.required("spec");

  std::optional<Kind> chaos_kind;
  bool workflow = false;
  if (kind) {
    if (*kind == "NetworkChaos")
      chaos_kind = Kind::kNetworkChaos;
    else if (*kind == "StressChaos")
      chaos_kind = Kind::kStressChaos;
    else if (*kind == "IOChaos")
      chaos_kind = Kind::kIOChaos;
    else if (*kind == "PodChaos")
      chaos_kind = Kind::kPodChaos;
    else if (*kind == "Workflow")
      workflow = true;
    else {
      bool known_unsupported = false;
      for (std::string_view k : kUnsupportedKinds) known_unsupported |= (*kind == k);
      top.error(kind_node, "kind",
                known_unsupported
                    ? "not supported by nodequake: " + *kind +
                          " (supported: NetworkChaos, StressChaos, IOChaos, PodChaos, Workflow)"
                    : "\"" + *kind +
                          "\" is not one of: NetworkChaos, StressChaos, IOChaos, PodChaos, "
                          "Workflow");
    }
  }
  top.finish();

  if (spec_node.IsDefined() && (chaos_kind || workflow)) {
    Fields spec(diag, spec_node, "spec");
    if (chaos_kind) {
      Experiment exp;
      exp.where = {diag.file(), top.line()};
      exp.api_version = api.value_or("");
      exp.kind = *chaos_kind;
      exp.name = name;
      exp.namespace_ = ns;
      const bool parsed = detail::parse_chaos_spec(spec, exp);
      if (parsed && !exp.duration && !is_one_shot(exp))
        diag.add(spec.line(), "spec.duration",
                 "is required (the agents revert on their own when it ends, even if the "
                 "controller is gone)");
      if (parsed && diag.size() == before) out.documents.emplace_back(std::move(exp));
    } else {
      Workflow wf;
      wf.where = {diag.file(), top.line()};
      wf.api_version = api.value_or("");
      wf.name = name;
      wf.namespace_ = ns;
      if (detail::parse_workflow_spec(spec, wf) && diag.size() == before)
        out.documents.emplace_back(std::move(wf));
    }
  }
}

}  // namespace

Parsed parse_experiments(std::string_view text, const std::string& file) {
  Parsed out;
  Diagnostics diag(file);
  std::vector<YAML::Node> docs;
  // yaml-cpp reports syntax errors by exception; this is its edge.
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    diag.add(e.mark.is_null() ? 0 : e.mark.line + 1, "", "YAML syntax: " + e.msg);
    out.diagnostics = diag.all();
    return out;
  }
  size_t non_empty = 0;
  for (const YAML::Node& doc : docs) {
    if (!doc.IsDefined() || doc.IsNull()) continue;  // "---" followed by nothing
    ++non_empty;
    parse_document(diag, doc, out);
  }
  if (non_empty == 0) diag.add(0, "", "no experiment in the file");
  out.diagnostics = diag.all();
  // Checks run field by field, not line by line; the reader wants file order.
  std::stable_sort(out.diagnostics.begin(), out.diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
  return out;
}

Parsed parse_experiment_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    Parsed out;
    out.diagnostics.push_back({path, 0, "", Error::from_errno(err, "open").message()});
    return out;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_experiments(ss.str(), path);
}

Result<std::vector<Document>> load_experiments(std::string_view text, const std::string& file) {
  Parsed p = parse_experiments(text, file);
  if (!p.ok()) {
    Diagnostics d(file);
    for (auto& x : p.diagnostics) d.add(x.line, x.field, x.message);
    return d.to_error();
  }
  return std::move(p.documents);
}

}  // namespace nq::experiment
