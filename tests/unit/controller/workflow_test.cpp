// Workflows: parsing the seed's comprehensive workflow, flattening Serial and
// Parallel templates into phases, and the reference errors.
#include <chrono>

#include "controller/experiment/workflow_plan.h"
#include "tests/unit/controller/test_util.h"

namespace nq::experiment {
namespace {

using namespace std::chrono_literals;
using testing::all_diagnostics;

// Names of the steps: one string per phase, lanes separated by " | ",
// steps of a lane by ",".
std::vector<std::string> phase_names(const Workflow& wf, const Plan& plan) {
  std::vector<std::string> out;
  for (const Phase& p : plan.phases) {
    std::string s;
    for (size_t l = 0; l < p.lanes.size(); ++l) {
      if (l) s += " | ";
      for (size_t i = 0; i < p.lanes[l].steps.size(); ++i)
        s += (i ? "," : "") + wf.templates[p.lanes[l].steps[i]].name;
    }
    out.push_back(s);
  }
  return out;
}

Template group(std::string name, TemplateType type, std::vector<std::string> children) {
  Template t;
  t.name = std::move(name);
  t.type = type;
  t.children = std::move(children);
  return t;
}

Template leaf(std::string name, nanoseconds deadline = 0s) {
  Template t;
  t.name = std::move(name);
  t.type = TemplateType::kSuspend;
  t.deadline = deadline;
  return t;
}

TEST(Workflow, SeedComprehensiveWorkflow) {
  auto docs = testing::load_ok("comprehensive-workflow.yaml");
  ASSERT_EQ(docs.size(), 1u);
  const Workflow& wf = std::get<Workflow>(docs[0]);
  EXPECT_EQ(wf.name, "comprehensive-chaos");
  EXPECT_EQ(wf.entry, "main");
  ASSERT_EQ(wf.abort_when.size(), 2u);
  EXPECT_EQ(wf.abort_when[1].comparison, Comparison::kGreater);

  const Template* pre = wf.find("pre-check");
  ASSERT_NE(pre, nullptr);
  EXPECT_EQ(pre->type, TemplateType::kSloCheck);
  ASSERT_EQ(pre->checks.size(), 2u);
  EXPECT_EQ(pre->checks[0].comparison, Comparison::kLess);
  EXPECT_DOUBLE_EQ(pre->checks[0].threshold, 0.01);
  EXPECT_EQ(pre->within, 0s);
  const Template* post = wf.find("post-check");
  EXPECT_EQ(post->within, 5min);
  EXPECT_EQ(post->interval, 10s);

  const Template* net = wf.find("network");
  ASSERT_TRUE(net->chaos);
  EXPECT_EQ(net->chaos->kind, Kind::kNetworkChaos);
  EXPECT_EQ(net->chaos->duration, 5min);  // from the template's deadline
  EXPECT_EQ(net->chaos->name, "comprehensive-chaos.network");
  EXPECT_EQ(net->chaos->namespace_, "chaos-testing");
  EXPECT_EQ(net->chaos->mode, (selection::ModeSpec{selection::Mode::kFixedPercent, 30}));
  const Template* failover = wf.find("redis-failover");
  EXPECT_FALSE(failover->deadline);  // pod-kill is one-shot
  EXPECT_EQ(wf.find("report")->report_path, "/var/lib/nodequake/reports/comprehensive-chaos.json");

  auto plan = plan_workflow(wf);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  EXPECT_EQ(phase_names(wf, *plan),
            (std::vector<std::string>{"pre-check", "network", "settle", "pod", "settle", "stress",
                                      "database | redis-failover,redis-recovery", "post-check",
                                      "report"}));
  // 5m x 4 chaos phases + 2 x 30s settle + the post-check's 5m.
  EXPECT_EQ(estimated_duration(wf, *plan), 26min);
}

TEST(Workflow, FlatteningRules) {
  Workflow wf;
  wf.entry = "main";
  wf.templates = {group("main", TemplateType::kSerial, {"a", "p", "inner", "e"}),
                  group("p", TemplateType::kParallel, {"b", "s", "pp"}),
                  group("s", TemplateType::kSerial, {"c", "s2"}),
                  group("s2", TemplateType::kSerial, {"d"}),
                  group("pp", TemplateType::kParallel, {"f", "g"}),
                  group("inner", TemplateType::kSerial, {"h", "i"}),
                  leaf("a", 1min),
                  leaf("b", 10min),
                  leaf("c", 3min),
                  leaf("d", 4min),
                  leaf("e", 1s),
                  leaf("f"),
                  leaf("g"),
                  leaf("h"),
                  leaf("i")};
  auto plan = plan_workflow(wf);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  // Serial in Serial merges; Parallel in Parallel adds lanes; a Serial lane
  // keeps its order (nested Serial merged into it).
  EXPECT_EQ(phase_names(wf, *plan),
            (std::vector<std::string>{"a", "b | c,d | f | g", "h", "i", "e"}));
  // a + max(b=10m, c+d=7m) + e
  EXPECT_EQ(estimated_duration(wf, *plan), 11min + 1s);
}

TEST(Workflow, LeafOrParallelEntry) {
  Workflow wf;
  wf.entry = "only";
  wf.templates = {leaf("only", 5s)};
  auto plan = plan_workflow(wf);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(phase_names(wf, *plan), std::vector<std::string>{"only"});

  wf.entry = "p";
  wf.templates = {group("p", TemplateType::kParallel, {"x", "y"}), leaf("x"), leaf("y")};
  plan = plan_workflow(wf);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(phase_names(wf, *plan), std::vector<std::string>{"x | y"});
}

TEST(Workflow, ParallelInsideSerialInsideParallelIsRefused) {
  Workflow wf;
  wf.where.file = "w.yaml";
  wf.entry = "p";
  wf.templates = {group("p", TemplateType::kParallel, {"s", "x"}),
                  group("s", TemplateType::kSerial, {"y", "q"}),
                  group("q", TemplateType::kParallel, {"z", "x"}),
                  leaf("x"),
                  leaf("y"),
                  leaf("z")};
  wf.templates[1].line = 7;
  auto plan = plan_workflow(wf);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().message().find("w.yaml:7: spec.templates[1].children[1]: Parallel \"q\" "
                                        "inside Serial \"s\" inside Parallel \"p\""),
            std::string::npos)
      << plan.error().message();
}

TEST(Workflow, ReferenceErrorsAllReported) {
  Parsed p = parse_experiment_file(testing::data("invalid/bad-workflow.yaml"));
  EXPECT_TRUE(p.documents.empty());
  ASSERT_EQ(p.diagnostics.size(), 4u) << all_diagnostics(p);
  EXPECT_EQ(p.diagnostics[0].line, 8);
  EXPECT_EQ(p.diagnostics[0].field, "spec.templates[0].children[1]");
  EXPECT_EQ(p.diagnostics[0].message, "\"missing\" is not the name of a template");
  EXPECT_EQ(p.diagnostics[1].line, 11);
  EXPECT_EQ(p.diagnostics[1].message, "cycle: main -> a -> main");
  // Two problems on line 14, in the order they were found.
  EXPECT_EQ(p.diagnostics[2].line, 14);
  EXPECT_EQ(p.diagnostics[2].field, "spec.templates[2].deadline");
  EXPECT_EQ(p.diagnostics[3].line, 14);
  EXPECT_EQ(p.diagnostics[3].message,
            "template \"pause\" is not reachable from the entry \"main\"");
}

TEST(Workflow, TemplateErrors) {
  Parsed p = parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entry: nope
  templates:
    - name: main
      templateType: Serial
      children: []
    - name: Bad_Name
      templateType: StatusCheck
    - name: net
      templateType: NetworkChaos
      podChaos: {action: pod-kill}
    - name: chaos
      templateType: PodChaos
      deadline: 1m
      podChaos:
        action: pod-failure
        mode: one
        duration: 2m
        selector: {namespaces: [a]}
    - name: check
      templateType: SLOCheck
      sloCheck:
        checks: [{query: up, threshold: 1}]
    - name: chaos
      templateType: Suspend
      deadline: 1s
      children: [main]
)",
                               "w.yaml");
  auto has = [&](int line, const std::string& field, const std::string& what) {
    for (const Diagnostic& d : p.diagnostics)
      if (d.line == line && d.field == field && d.message.find(what) != std::string::npos)
        return true;
    ADD_FAILURE() << line << " " << field << " " << what << " not in:\n" << all_diagnostics(p);
    return false;
  };
  has(5, "spec.entry", "\"nope\" is not the name of a template");
  has(9, "spec.templates[0].children", "must name at least one template");
  has(10, "spec.templates[1].name", "lowercase letters");
  has(11, "spec.templates[1].templateType", "use SLOCheck");
  has(14, "spec.templates[2].podChaos", "only used by templateType PodChaos");
  has(12, "spec.templates[2].networkChaos", "is required");
  has(15, "spec.templates[3].deadline", "differs from spec.templates[3].podChaos.duration");
  has(26, "spec.templates[4].sloCheck.checks[0].operator", "is required");
  has(27, "spec.templates[5].name", "\"chaos\" names two templates");
  has(30, "spec.templates[5].children", "only used by Serial and Parallel");
}

TEST(Workflow, ChaosStepNeedsADeadline) {
  Parsed p = parse_experiments(R"(apiVersion: nodequake.io/v1alpha1
kind: Workflow
metadata: {name: w}
spec:
  entry: s
  templates:
    - name: s
      templateType: StressChaos
      stressChaos:
        mode: one
        selector: {namespaces: [a]}
        stressors: {cpu: {load: 10}}
)",
                               "w.yaml");
  ASSERT_EQ(p.diagnostics.size(), 1u) << all_diagnostics(p);
  EXPECT_EQ(p.diagnostics[0].line, 7);
  EXPECT_EQ(p.diagnostics[0].field, "spec.templates[0].deadline");
}

}  // namespace
}  // namespace nq::experiment
