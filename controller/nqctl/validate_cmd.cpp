// `nqctl validate FILE...`: parse experiment files without touching any
// agent. Every problem of every file is printed as "file:line: field: what";
// a valid file prints one summary line per experiment.
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "controller/experiment/lower.h"
#include "controller/experiment/parse.h"
#include "controller/experiment/summary.h"
#include "controller/experiment/workflow_plan.h"
#include "controller/nqctl/command.h"

namespace nq::nqctl {
namespace {

struct ValidateFlags {
  std::vector<std::string> files;
  bool show_requests = false;
};

void print_requests(const experiment::Experiment& exp, const std::string& indent) {
  const experiment::Lowered l = experiment::lower(exp);
  google::protobuf::util::JsonPrintOptions opts;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(l.selector, &json, opts);
  std::printf("%sselector %s\n", indent.c_str(), json.c_str());
  if (l.target) {
    json.clear();
    (void)google::protobuf::util::MessageToJsonString(l.target->selector, &json, opts);
    std::printf("%starget %s (%s)\n", indent.c_str(), json.c_str(),
                selection::describe(l.target->mode).c_str());
  }
  for (const auto& fault : l.faults) {
    json.clear();
    (void)google::protobuf::util::MessageToJsonString(fault, &json, opts);
    std::printf("%sfault %s\n", indent.c_str(), json.c_str());
  }
}

int run_validate(const ValidateFlags& flags) {
  size_t errors = 0;
  for (const std::string& file : flags.files) {
    const experiment::Parsed parsed = experiment::parse_experiment_file(file);
    // Summaries (stdout) and errors (stderr) in file order when both go to one terminal or log.
    std::fflush(stdout);
    for (const experiment::Diagnostic& d : parsed.diagnostics)
      std::fprintf(stderr, "%s\n", d.str().c_str());
    errors += parsed.diagnostics.size();
    if (!parsed.ok()) continue;
    for (const experiment::Document& doc : parsed.documents) {
      if (const auto* exp = std::get_if<experiment::Experiment>(&doc)) {
        std::printf("%s:%d: %s\n", file.c_str(), exp->where.line,
                    experiment::summarize(*exp).c_str());
        if (flags.show_requests) print_requests(*exp, "    ");
        continue;
      }
      const auto& wf = std::get<experiment::Workflow>(doc);
      auto plan = experiment::plan_workflow(wf);
      if (!plan.ok()) {  // the parser already planned it; kept for safety
        std::fprintf(stderr, "%s\n", plan.error().message().c_str());
        ++errors;
        continue;
      }
      std::printf("%s:%d: %s\n", file.c_str(), wf.where.line,
                  experiment::summarize(wf, *plan).c_str());
      if (!flags.show_requests) continue;
      for (size_t p = 0; p < plan->phases.size(); ++p) {
        for (const experiment::Lane& lane : plan->phases[p].lanes) {
          for (size_t s : lane.steps) {
            const experiment::Template& t = wf.templates[s];
            std::printf("  phase %zu: %s (%s)\n", p + 1, t.name.c_str(),
                        t.chaos ? experiment::summarize(*t.chaos).c_str()
                                : std::string(experiment::template_type_name(t.type)).c_str());
            if (t.chaos) print_requests(*t.chaos, "      ");
          }
        }
      }
    }
  }
  if (errors > 0) {
    std::fprintf(stderr, "%zu error%s\n", errors, errors == 1 ? "" : "s");
    return 1;
  }
  return 0;
}

}  // namespace

void add_validate_commands(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<ValidateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "validate", "check experiment files: every error as file:line: field: what");
  cmd->add_option("files", flags->files, "experiment files (YAML, one or more documents)")
      ->required();
  cmd->add_flag("--show-requests", flags->show_requests,
                "also print the selector and the FaultSpecs sent to the agents");
  cmd->callback([flags, &ctx] { ctx.action = [flags] { return run_validate(*flags); }; });
}

}  // namespace nq::nqctl
