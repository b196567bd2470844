// Shared pieces of the experiment parsers (parse.cpp, parse_chaos.cpp,
// parse_workflow.cpp). Not part of the library's interface.
#pragma once

#include <optional>
#include <string>

#include "controller/experiment/model.h"
#include "controller/experiment/yaml_fields.h"

namespace nq::experiment::detail {

// Fields shared by every chaos kind (selector, mode, value, duration,
// abortWhen) and the kind's own fields, read from `spec`. Returns nullopt
// when anything was reported. `exp` carries kind, name and location already.
bool parse_chaos_spec(Fields& spec, Experiment& exp);

std::optional<Selector> parse_selector(Diagnostics& diag, const YAML::Node& node,
                                       const std::string& path);
// mode + value of the mapping `f` (spec, or target).
std::optional<selection::ModeSpec> parse_mode(Fields& f, bool required);
std::vector<AbortRule> parse_abort_rules(Fields& f);
std::optional<Comparison> parse_comparison(Fields& f, std::string_view key);

// The workflow's templates and entry, checked (names, references, cycles, nesting).
bool parse_workflow_spec(Fields& spec, Workflow& wf);

}  // namespace nq::experiment::detail
