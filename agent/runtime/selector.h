// Kubernetes label-selector semantics over PodInfo, plus the agent's safety rules.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/runtime/runtime.h"
#include "common/result.h"

namespace nodequake::v1 {
class PodSelector;
}

namespace nq::runtime {

struct Requirement {
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kExists;
  std::vector<std::string> values;
};

struct Selector {
  std::vector<std::string> namespaces;  // empty: any
  std::map<std::string, std::string> match_labels;
  std::vector<Requirement> expressions;

  bool matches(const PodInfo& pod) const;
};

// Validates operators and values the way the API server does (In/NotIn need
// values, Exists/DoesNotExist take none); errors name the field.
Result<Selector> selector_from_proto(const nodequake::v1::PodSelector& proto);

// Who may be injected: pods carrying the opt-in label, outside protected
// namespaces, with a network namespace of their own.
struct SafetyPolicy {
  std::string opt_in_label = "chaos-ready";
  std::string opt_in_value = "true";
  std::set<std::string> protected_namespaces = {"kube-system", "kube-public", "kube-node-lease",
                                                "nodequake-system"};
};

// FailedPrecondition naming the rule the pod breaks, or ok.
Status check_eligible(const PodInfo& pod, const SafetyPolicy& policy);

}  // namespace nq::runtime
