#include "agent/runtime/selector.h"

#include <algorithm>

#include "nodequake/v1/agent.pb.h"

namespace nq::runtime {

bool Selector::matches(const PodInfo& pod) const {
  if (!namespaces.empty() &&
      std::find(namespaces.begin(), namespaces.end(), pod.namespace_name) == namespaces.end())
    return false;
  for (const auto& [key, value] : match_labels) {
    auto it = pod.labels.find(key);
    if (it == pod.labels.end() || it->second != value) return false;
  }
  for (const Requirement& req : expressions) {
    auto it = pod.labels.find(req.key);
    const bool has = it != pod.labels.end();
    const bool in_values =
        has && std::find(req.values.begin(), req.values.end(), it->second) != req.values.end();
    switch (req.op) {
      case Requirement::Op::kIn:
        if (!in_values) return false;
        break;
      case Requirement::Op::kNotIn:
        // Kubernetes: NotIn also matches pods that lack the key.
        if (in_values) return false;
        break;
      case Requirement::Op::kExists:
        if (!has) return false;
        break;
      case Requirement::Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

Result<Selector> selector_from_proto(const nodequake::v1::PodSelector& proto) {
  Selector sel;
  for (int i = 0; i < proto.namespaces_size(); ++i) {
    if (proto.namespaces(i).empty())
      return Error::invalid_argument("selector.namespaces[" + std::to_string(i) + "]", "empty");
    sel.namespaces.push_back(proto.namespaces(i));
  }
  for (const auto& [key, value] : proto.match_labels()) {
    if (key.empty()) return Error::invalid_argument("selector.match_labels", "empty key");
    sel.match_labels.emplace(key, value);
  }
  for (int i = 0; i < proto.match_expressions_size(); ++i) {
    const auto& e = proto.match_expressions(i);
    const std::string field = "selector.match_expressions[" + std::to_string(i) + "]";
    if (e.key().empty()) return Error::invalid_argument(field + ".key", "empty");
    Requirement req;
    req.key = e.key();
    req.values.assign(e.values().begin(), e.values().end());
    if (e.operator_() == "In") {
      req.op = Requirement::Op::kIn;
    } else if (e.operator_() == "NotIn") {
      req.op = Requirement::Op::kNotIn;
    } else if (e.operator_() == "Exists") {
      req.op = Requirement::Op::kExists;
    } else if (e.operator_() == "DoesNotExist") {
      req.op = Requirement::Op::kDoesNotExist;
    } else {
      return Error::invalid_argument(field + ".operator", "\"" + e.operator_() +
                                                              "\" is not one of In, NotIn, Exists, "
                                                              "DoesNotExist");
    }
    const bool wants_values = req.op == Requirement::Op::kIn || req.op == Requirement::Op::kNotIn;
    if (wants_values && req.values.empty())
      return Error::invalid_argument(field + ".values", "must be non-empty for " + e.operator_());
    if (!wants_values && !req.values.empty())
      return Error::invalid_argument(field + ".values", "must be empty for " + e.operator_());
    sel.expressions.push_back(std::move(req));
  }
  return sel;
}

Status check_eligible(const PodInfo& pod, const SafetyPolicy& policy) {
  if (policy.protected_namespaces.count(pod.namespace_name))
    return Error::failed_precondition("pod " + pod.key() + " is in protected namespace " +
                                      pod.namespace_name);
  auto it = pod.labels.find(policy.opt_in_label);
  if (it == pod.labels.end() || it->second != policy.opt_in_value)
    return Error::failed_precondition("pod " + pod.key() + " lacks the opt-in label " +
                                      policy.opt_in_label + "=\"" + policy.opt_in_value + "\"");
  if (pod.host_network || pod.netns_path.empty())
    return Error::failed_precondition("pod " + pod.key() +
                                      " shares the host network namespace (hostNetwork)");
  return ok();
}

}  // namespace nq::runtime
