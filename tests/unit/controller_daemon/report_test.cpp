// The per-phase report of a run: which SLOs a workflow is measured by, one
// record per phase and step of its plan, and the before/during/after values.
#include "controller/daemon/report.h"

#include <gtest/gtest.h>

#include "controller/experiment/parse.h"

namespace nq::controller {
namespace {

const char* kWorkflow = R"(apiVersion: nodequake.io/v1alpha1
kind: Workflow
metadata: {name: wf, namespace: shop}
spec:
  entry: main
  abortWhen:
    - {name: errors, query: err_ratio, operator: ">", threshold: 0.5}
  templates:
    - name: main
      templateType: Serial
      children: [pre, settle, both, settle, post]
    - name: pre
      templateType: SLOCheck
      sloCheck:
        checks:
          - {name: errors, query: err_ratio, operator: "<", threshold: 0.01}
          - {name: p95, query: p95_seconds, operator: "<", threshold: 2}
    - name: settle
      templateType: Suspend
      deadline: 1s
    - name: both
      templateType: Parallel
      children: [slow, cpu]
    - name: slow
      templateType: NetworkChaos
      deadline: 3s
      networkChaos:
        action: bandwidth
        mode: one
        selector: {namespaces: [shop]}
        bandwidth: {rate: 1mbps}
    - name: cpu
      templateType: StressChaos
      deadline: 2s
      stressChaos:
        mode: one
        selector: {namespaces: [shop]}
        stressors: {cpu: {load: 50}}
    - name: post
      templateType: SLOCheck
      sloCheck:
        within: 1m
        checks:
          - {name: errors, query: err_ratio, operator: "<", threshold: 0.05}
          - {name: ready, query: ready_pods, operator: ">=", threshold: 3}
)";

experiment::Workflow workflow(const std::string& yaml) {
  auto docs = experiment::load_experiments(yaml, "wf.yaml");
  EXPECT_TRUE(docs.ok()) << (docs.ok() ? "" : docs.error().message());
  return std::get<experiment::Workflow>(docs->at(0));
}

prom::SloPhase sample(const std::string& phase, double errors) {
  prom::SloPhase p;
  p.phase = phase;
  p.results.push_back({"errors", "err_ratio", "< 0.01", errors, errors < 0.01, ""});
  return p;
}

TEST(WorkflowSlos, TheChecksOfItsSloStepsOncePerName) {
  auto slos = workflow_slos(workflow(kWorkflow));
  ASSERT_EQ(slos.size(), 3u);
  EXPECT_EQ(slos[0].name, "errors");
  EXPECT_DOUBLE_EQ(slos[0].threshold, 0.01);  // the first step's bound wins
  EXPECT_EQ(slos[1].name, "p95");
  EXPECT_EQ(slos[2].name, "ready");
  EXPECT_EQ(slos[2].comparison, prom::Comparison::kGreaterEqual);
}

TEST(WorkflowSlos, WithoutSloStepsTheAbortRulesNegated) {
  auto wf = workflow(kWorkflow);
  std::erase_if(wf.templates,
                [](const auto& t) { return t.type == experiment::TemplateType::kSloCheck; });
  auto slos = workflow_slos(wf);
  ASSERT_EQ(slos.size(), 1u);
  EXPECT_EQ(slos[0].name, "errors");
  EXPECT_EQ(slos[0].comparison, prom::Comparison::kLessEqual);  // "> 0.5" aborts
  EXPECT_DOUBLE_EQ(slos[0].threshold, 0.5);
}

TEST(PlanRecords, OnePerPhaseAndOnePerStepEvenForARepeatedTemplate) {
  auto wf = workflow(kWorkflow);
  auto plan = experiment::plan_workflow(wf);
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  std::vector<PhaseRecord> phases;
  std::vector<StepRecord> steps;
  plan_records(wf, *plan, phases, steps);
  ASSERT_EQ(phases.size(), 5u);
  EXPECT_FALSE(phases[0].injects);
  EXPECT_TRUE(phases[2].injects);
  ASSERT_EQ(phases[2].lanes.size(), 2u);
  EXPECT_EQ(phases[2].lanes[0], std::vector<std::string>{"slow"});
  EXPECT_EQ(phases[2].lanes[1], std::vector<std::string>{"cpu"});
  ASSERT_EQ(steps.size(), 6u);
  EXPECT_EQ(steps[1].name, "settle");
  EXPECT_EQ(steps[1].phase, 1u);
  EXPECT_EQ(steps[4].name, "settle");
  EXPECT_EQ(steps[4].phase, 3u);
  EXPECT_EQ(steps[2].type, "NetworkChaos");
  EXPECT_EQ(steps[3].type, "StressChaos");
  EXPECT_EQ(steps[3].lane, 1u);
  EXPECT_EQ(steps[5].type, "SLOCheck");
}

TEST(PhaseJson, BeforeDuringAfterPerSloAndTheRecovery) {
  PhaseRecord p;
  p.lanes = {{"slow"}, {"cpu"}};
  p.injects = true;
  p.started = WallTime(std::chrono::seconds(1000));
  p.ended = WallTime(std::chrono::seconds(1004));
  p.before = sample("before", 0);
  p.during = sample("during", 0.2);
  p.after = sample("after", 0.001);
  prom::Recovery rec;
  rec.recovered = true;
  rec.duration = std::chrono::milliseconds(1500);
  rec.polls = 3;
  p.recovery = rec;
  std::vector<StepRecord> steps(2);
  steps[0].name = "slow";
  steps[0].type = "NetworkChaos";
  steps[0].phase = 2;
  steps[0].outcome = "ok";
  steps[0].injections = 1;
  steps[1].name = "other-phase";
  steps[1].phase = 1;

  auto j = phase_json(2, p, steps);
  EXPECT_EQ(j["phase"], 3);
  EXPECT_EQ(j["name"], "slow | cpu");
  EXPECT_EQ(j["duration_ms"], 4000);
  ASSERT_EQ(j["steps"].size(), 1u);
  EXPECT_EQ(j["steps"][0]["injections"], 1);
  EXPECT_DOUBLE_EQ(j["values"]["errors"]["before"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(j["values"]["errors"]["during"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(j["values"]["errors"]["after"].get<double>(), 0.001);
  EXPECT_EQ(j["values"]["errors"]["bound"], "< 0.01");
  EXPECT_EQ(j["recovery"]["duration_ms"], 1500);
  EXPECT_TRUE(j["recovery"]["recovered"]);
  EXPECT_FALSE(j["slo"]["during"]["passed"]);

  const std::string table = phases_table({PhaseRecord{}, PhaseRecord{}, p});
  EXPECT_NE(table.find("3 slow | cpu"), std::string::npos) << table;
  EXPECT_NE(table.find("0.2"), std::string::npos) << table;
  EXPECT_NE(table.find("1.5 s"), std::string::npos) << table;
  EXPECT_EQ(phases_table({PhaseRecord{}}), "");
}

TEST(ChecksFromRules, TheBoundIsTheRuleNegated) {
  prom::AbortRule rule;
  rule.name = "";
  rule.query = "up == 0";
  rule.comparison = prom::Comparison::kGreaterEqual;
  rule.threshold = 1;
  auto checks = checks_from_rules({rule});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].name, "up == 0");  // unnamed: the query names it
  EXPECT_EQ(checks[0].comparison, prom::Comparison::kLess);
}

}  // namespace
}  // namespace nq::controller
