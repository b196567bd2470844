// The e2e tier, the daemon's own duties: a Workflow run phase by phase with
// SLO checks against the real Prometheus and a per-phase report, SIGTERM,
// the /metrics endpoint, and experiment records across a restart.
#include <sys/wait.h>

#include "common/file.h"
#include "tests/e2e/e2e_fixture.h"

namespace nq::testing {
namespace {

constexpr double kDegraded = 0.25;  // the pretend service's error ratio under faults

// A bandwidth fault on the one pod app=<app>, as a workflow step.
std::string chaos_step(const std::string& name, const std::string& app,
                       const std::string& deadline) {
  return "    - name: " + name +
         "\n"
         "      templateType: NetworkChaos\n"
         "      deadline: " +
         deadline +
         "\n"
         "      networkChaos:\n"
         "        action: bandwidth\n"
         "        mode: all\n"
         "        selector: {namespaces: [" +
         g->ns + "], labelSelectors: {app: " + app +
         "}}\n"
         "        bandwidth: {rate: 1mbps}\n";
}

std::string slo_step(const std::string& name, const std::string& extra = "") {
  return "    - name: " + name +
         "\n"
         "      templateType: SLOCheck\n"
         "      sloCheck:\n" +
         extra +
         "        checks:\n"
         "          - {name: error-rate, query: nqtest_error_ratio, operator: \"<\", "
         "threshold: 0.01}\n"
         "          - {name: latency, query: nqtest_request_latency_seconds, operator: \"<\", "
         "threshold: 0.5}\n";
}

std::string workflow_head(const std::string& name, const std::string& main_children) {
  return "apiVersion: nodequake.io/v1alpha1\n"
         "kind: Workflow\n"
         "metadata: {name: " +
         name + ", namespace: " + g->ns +
         "}\n"
         "spec:\n"
         "  entry: main\n"
         "  templates:\n"
         "    - name: main\n"
         "      templateType: Serial\n"
         "      children: [" +
         main_children + "]\n";
}

std::string suspend_step(const std::string& name, const std::string& deadline) {
  return "    - name: " + name + "\n      templateType: Suspend\n      deadline: " + deadline +
         "\n";
}

std::string report_step(const std::string& name, const std::string& path) {
  return "    - name: " + name + "\n      templateType: Report\n      report: {path: " + path +
         "}\n";
}

// A plain NetworkChaos on the one pod app=<app>.
std::string single_pod_file(const std::string& name, const std::string& app,
                            const std::string& duration) {
  const auto path = g->files->path() / (name + ".yaml");
  write(path, "apiVersion: chaos-mesh.org/v1alpha1\nkind: NetworkChaos\nmetadata: {name: " + name +
                  ", namespace: " + g->ns +
                  "}\nspec:\n  action: bandwidth\n  mode: all\n  selector:\n    namespaces: [" +
                  g->ns + "]\n    labelSelectors: {app: " + app +
                  "}\n  bandwidth: {rate: 1mbps}\n  duration: " + duration + "\n");
  return path.string();
}

// Position of the first audit event with this action and step.
size_t audit_index(const std::vector<nlohmann::json>& events, const std::string& action,
                   const std::string& step) {
  for (size_t i = 0; i < events.size(); ++i)
    if (events[i]["action"] == action && events[i]["details"].value("step", "") == step) return i;
  return SIZE_MAX;
}

double value(const nlohmann::json& phase, const char* when) {
  const auto& v = phase["values"]["error-rate"][when];
  return v.is_number() ? v.get<double>() : std::nan("");
}

TEST_F(E2ETest, WorkflowRunsPhasesInOrderLanesSideBySideAndReportsEveryPhase) {
  start_controller();
  const auto report_path = state_->path() / "wf-order-report.json";
  const auto file = g->files->path() / "wf-order.yaml";
  write(file,
        workflow_head("wf-order", "pre-check, first, settle, side-by-side, post-check, report") +
            slo_step("pre-check") + chaos_step("first", "svc-a0", "3s") +
            suspend_step("settle", "1s") +
            "    - name: side-by-side\n"
            "      templateType: Parallel\n"
            "      children: [lane-b, lane-c]\n" +
            chaos_step("lane-b", "svc-b0", "4s") +
            "    - name: lane-c\n"
            "      templateType: Serial\n"
            "      children: [pause-c, chaos-c]\n" +
            suspend_step("pause-c", "500ms") + chaos_step("chaos-c", "svc-c0", "3s") +
            slo_step("post-check", "        within: 20s\n        interval: 500ms\n") +
            report_step("report", report_path.string()));
  DegradingService service(kDegraded);
  auto run = nqctl({"run", "-f", file.string(), "--force", "--poll", "500ms"});
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err << controller_->log_tail();
  const std::string id = submitted_id(run);
  ASSERT_FALSE(id.empty()) << run.out;

  // The agents' view: "first" was gone before either lane began; the lanes
  // held their faults at the same time, lane c half a second after lane b.
  auto first = service.step("first"), b = service.step("lane-b"), c = service.step("chaos-c");
  ASSERT_TRUE(first && b && c) << "a step never reached the agents";
  EXPECT_LT(first->last, b->first);
  EXPECT_LT(first->last, c->first);
  EXPECT_LT(b->first, c->last);
  EXPECT_LT(c->first, b->last);
  EXPECT_LT(b->first, c->first);

  // The controller's view (the audit log's order): the same.
  auto events = audit_events(id);
  const size_t inject_first = audit_index(events, "inject", "first");
  const size_t revert_first = audit_index(events, "revert", "first");
  const size_t inject_b = audit_index(events, "inject", "lane-b");
  const size_t inject_c = audit_index(events, "inject", "chaos-c");
  const size_t revert_b = audit_index(events, "revert", "lane-b");
  const size_t revert_c = audit_index(events, "revert", "chaos-c");
  ASSERT_NE(revert_c, SIZE_MAX);
  EXPECT_LT(inject_first, revert_first);
  EXPECT_LT(revert_first, inject_b);
  EXPECT_LT(revert_first, inject_c);
  EXPECT_LT(inject_b, revert_c);
  EXPECT_LT(inject_c, revert_b);

  // The Report step's file, rewritten with the outcome at the end.
  auto text = read_file(report_path);
  ASSERT_TRUE(text.ok()) << text.error().message();
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j["state"], "Succeeded");
  EXPECT_TRUE(j["slo"]["pre"]["passed"]) << j["slo"].dump(2);
  EXPECT_TRUE(j["recovery"]["recovered"]) << j.dump(2);
  const auto& phases = j["phases"];
  ASSERT_EQ(phases.size(), 6u) << phases.dump(2);
  EXPECT_EQ(phases[1]["name"], "first");
  EXPECT_EQ(phases[3]["name"], "lane-b | pause-c, chaos-c");
  ASSERT_EQ(phases[3]["lanes"].size(), 2u);
  // The SLO before, during and after each fault phase, and its recovery.
  for (size_t p : {1u, 3u}) {
    SCOPED_TRACE("phase " + std::to_string(p + 1));
    EXPECT_DOUBLE_EQ(value(phases[p], "before"), 0);
    EXPECT_DOUBLE_EQ(value(phases[p], "during"), kDegraded);
    EXPECT_DOUBLE_EQ(value(phases[p], "after"), 0);
    EXPECT_TRUE(phases[p]["recovery"]["recovered"]);
    // The service recovers once the agents have reverted; Prometheus scrapes
    // every second and the controller polls every 500 ms.
    EXPECT_GT(phases[p]["recovery"]["duration_ms"].get<int64_t>(), 0);
    EXPECT_LT(phases[p]["recovery"]["duration_ms"].get<int64_t>(), 8000);
    std::printf("[ MEASURE  ] phase %zu recovered %lld ms after its revert\n", p + 1,
                static_cast<long long>(phases[p]["recovery"]["duration_ms"].get<int64_t>()));
  }
  for (const auto& phase : phases)
    for (const auto& step : phase["steps"]) EXPECT_EQ(step["outcome"], "ok") << step.dump();
  EXPECT_FALSE(phases[0].contains("recovery"));  // nothing injected, nothing to recover from

  // nqctl describe: one selection per chaos step.
  auto describe = nqctl({"describe", id}, "viewer");
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  for (const char* line : {"  first: 1 of 1 eligible pods", "  lane-b: 1 of 1 eligible pods",
                           "  chaos-c: 1 of 1 eligible pods", "    " /* pod lines */})
    EXPECT_THAT(describe.out, HasSubstr(line));
  EXPECT_THAT(describe.out, HasSubstr("/svc-c0 on "));
  // The file in one line, as the report has it.
  ASSERT_FALSE(j["summary"].get<std::string>().empty());
  EXPECT_THAT(describe.out, HasSubstr("Faults:       " + j["summary"].get<std::string>() + "\n"));
  EXPECT_EQ(j["selections"].size(), 3u);

  // nqctl report: the same, and the per-phase table.
  auto table = nqctl({"report", id}, "viewer");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("DURING"));
  EXPECT_THAT(table.out, HasSubstr("4 lane-b | pause-c, chaos-c"));
  // Three recoveries observed: two phases and the post-check's `within`.
  EXPECT_GE(metric("nodequake_recovery_duration_seconds_count"), 3);
}

TEST_F(E2ETest, FailingSloCheckAbortsTheWorkflowAndRevertsTheOtherLane) {
  start_controller();
  const auto file = g->files->path() / "wf-abort.yaml";
  write(file, workflow_head("wf-abort", "pre-check, chaos-and-check, never, report") +
                  slo_step("pre-check") +
                  "    - name: chaos-and-check\n"
                  "      templateType: Parallel\n"
                  "      children: [long, checker]\n" +
                  chaos_step("long", "svc-a1", "30s") +
                  "    - name: checker\n"
                  "      templateType: Serial\n"
                  "      children: [wait, mid-check]\n" +
                  suspend_step("wait", "2500ms") + slo_step("mid-check") +
                  suspend_step("never", "1s") +
                  report_step("report", (state_->path() / "never.json").string()));
  DegradingService service(kDegraded);
  const auto start = SteadyClock::now();
  auto run = nqctl({"run", "-f", file.string(), "--force", "--poll", "500ms"});
  const auto took = SteadyClock::now() - start;
  EXPECT_EQ(run.exit_code, 3) << run.out << run.err;  // Aborted
  EXPECT_THAT(run.out, HasSubstr("SLO check mid-check failed: error-rate 0.25 not < 0.01"));
  // Long before the 30 s fault would have ended.
  EXPECT_LT(took, 20s);
  EXPECT_EQ(active_total(), 0u);
  EXPECT_TRUE(changed_pods().empty());
  auto long_step = service.step("long");
  ASSERT_TRUE(long_step);
  EXPECT_LT(long_step->last - long_step->first, 10s);

  const std::string id = submitted_id(run);
  auto s = status(id);
  EXPECT_EQ(s.state(), v1::EXPERIMENT_STATE_ABORTED);
  EXPECT_EQ(s.abort_rule(), "error-rate");
  EXPECT_DOUBLE_EQ(s.abort_value(), kDegraded);
  bool audited = false;
  for (const auto& e : audit_events(id))
    if (e["action"] == "abort" && e["details"]["reason"] == "slo-check") audited = true;
  EXPECT_TRUE(audited);
  EXPECT_EQ(metric("nodequake_aborts_total", {{"reason", "slo-check"}}), 1);

  auto report = nqctl({"report", id, "-o", "json"}, "viewer");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  auto j = nlohmann::json::parse(report.out);
  EXPECT_EQ(j["state"], "Aborted");
  EXPECT_TRUE(j["slo"]["pre"]["passed"]);  // the passing check
  const auto& phases = j["phases"];
  ASSERT_EQ(phases.size(), 4u);
  std::map<std::string, std::string> outcome;
  for (const auto& phase : phases)
    for (const auto& step : phase["steps"]) outcome[step["name"]] = step["outcome"];
  EXPECT_EQ(outcome["pre-check"], "ok");
  EXPECT_EQ(outcome["long"], "stopped");
  EXPECT_THAT(outcome["mid-check"], HasSubstr("failed: SLO check mid-check failed"));
  EXPECT_EQ(outcome["never"], "not run");
  EXPECT_EQ(outcome["report"], "not run");
  EXPECT_DOUBLE_EQ(value(phases[1], "during"), kDegraded);
  EXPECT_TRUE(phases[1]["recovery"]["recovered"]) << phases[1].dump(2);
  EXPECT_FALSE(std::filesystem::exists(state_->path() / "never.json"));
}

TEST_F(E2ETest, SigtermRevertsRunningExperimentsRecordsThemAndExitsZero) {
  // A lease far longer than the test: whatever is reverted, the controller did.
  start_controller({}, 60s);
  auto plain = nqctl({"apply", "-f", single_pod_file("term-plain", "svc-b1", "60s"), "--force"});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto wf_file = g->files->path() / "term-wf.yaml";
  write(wf_file, workflow_head("term-wf", "hold") + chaos_step("hold", "svc-c1", "60s"));
  auto wf = nqctl({"apply", "-f", wf_file.string(), "--force"});
  ASSERT_EQ(wf.exit_code, 0) << wf.err;
  ASSERT_TRUE(wait_active(2, 20s)) << controller_->log_tail();

  const auto start = SteadyClock::now();
  auto status_word = controller_->stop(SIGTERM);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  ASSERT_TRUE(status_word.ok()) << status_word.error().message();
  EXPECT_TRUE(WIFEXITED(*status_word) && WEXITSTATUS(*status_word) == 0)
      << "wait status " << *status_word << "\n"
      << controller_->log_tail();
  EXPECT_LT(took, 5s);
  // At once, not after the lease.
  EXPECT_EQ(active_total(), 0u);
  EXPECT_TRUE(changed_pods().empty());
  EXPECT_THAT(controller_->log_tail(), HasSubstr("shutdown complete"));
  std::printf("[ MEASURE  ] SIGTERM to exit 0 with 2 running experiments reverted: %lld ms\n",
              static_cast<long long>(took.count()));
  std::istringstream log(controller_->log_tail(20000));
  for (std::string line; std::getline(log, line);)
    if (line.find("shutdown") != std::string::npos || line.find("signal") != std::string::npos)
      std::printf("[ LOG      ] %s\n", line.c_str());
  controller_.reset();

  // Their final status was recorded: a new controller shows it.
  start_controller();
  for (const auto* r : {&plain, &wf}) {
    auto s = status(submitted_id(*r));
    EXPECT_EQ(s.state(), v1::EXPERIMENT_STATE_REVERTED) << s.id();
    EXPECT_EQ(s.message(), "controller shutting down");
    EXPECT_EQ(s.injections(), 0u);
  }
}

TEST_F(E2ETest, MetricsEndpointFollowsExperimentsAbortsRecoveryAndTheKillSwitch) {
  start_controller();
  EXPECT_EQ(metric("nodequake_killswitch_engaged"), 0);
  EXPECT_EQ(metric("nodequake_injected_targets"), 0);

  // 3 of the 10 pods, guarded by a rule (its bound is the run's SLO).
  const std::string rule =
      "  abortWhen:\n"
      "    - {name: error-rate, query: nqtest_error_ratio, operator: \">\", threshold: 0.1}\n";
  auto r = nqctl(
      {"apply", "-f", experiment_file("metered", "  mode: fixed\n  value: \"3\"\n", "60s", rule)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = submitted_id(r);
  ASSERT_TRUE(wait_active(3, 20s));
  wait_status(id, [](const auto& s) { return s.injections() == 3; });
  EXPECT_EQ(metric("nodequake_experiments_active", {{"kind", "NetworkChaos"}}), 1);
  EXPECT_EQ(metric("nodequake_injected_targets"), 3);
  EXPECT_NEAR(metric("nodequake_blast_radius_ratio", {{"experiment", id}}), 0.3, 1e-9);

  auto aborted = nqctl({"abort", id, "--reason", "metrics test"});
  ASSERT_EQ(aborted.exit_code, 0) << aborted.err;
  EXPECT_EQ(wait_status(id, ended).state(), v1::EXPERIMENT_STATE_ABORTED);
  EXPECT_EQ(metric("nodequake_experiments_active", {{"kind", "NetworkChaos"}}), 0);
  EXPECT_EQ(metric("nodequake_injected_targets"), 0);
  EXPECT_TRUE(std::isnan(metric("nodequake_blast_radius_ratio", {{"experiment", id}})));
  EXPECT_EQ(metric("nodequake_aborts_total", {{"reason", "operator"}}), 1);
  EXPECT_EQ(
      metric("nodequake_experiments_total", {{"kind", "NetworkChaos"}, {"outcome", "Aborted"}}), 1);
  // Recovered at the first poll: the error ratio never moved.
  EXPECT_EQ(metric("nodequake_recovery_duration_seconds_count"), 1);
  EXPECT_LT(metric("nodequake_recovery_duration_seconds_sum"), 2);

  // A rule that breaches: aborts{reason="rule"}, and a recovery that takes a
  // while (the error ratio stays up until the test lowers it).
  auto breach = nqctl(
      {"apply", "-f", experiment_file("breach", "  mode: fixed\n  value: \"1\"\n", "60s", rule)});
  ASSERT_EQ(breach.exit_code, 0) << breach.err;
  const std::string breach_id = submitted_id(breach);
  ASSERT_TRUE(wait_active(1, 20s));
  g->prom->errors().Set(0.5);
  ASSERT_TRUE(wait_active(0, 15s));
  std::this_thread::sleep_for(2s);
  g->prom->errors().Set(0);
  EXPECT_EQ(wait_status(breach_id, ended).state(), v1::EXPERIMENT_STATE_ABORTED);
  EXPECT_EQ(metric("nodequake_aborts_total", {{"reason", "rule"}}), 1);
  EXPECT_EQ(
      metric("nodequake_experiments_total", {{"kind", "NetworkChaos"}, {"outcome", "Aborted"}}), 2);
  EXPECT_EQ(metric("nodequake_recovery_duration_seconds_count"), 2);
  // The second recovery took at least the 2 s the ratio stayed up.
  EXPECT_GE(metric("nodequake_recovery_duration_seconds_sum"), 2);
  EXPECT_EQ(metric("nodequake_recovery_duration_seconds_bucket", {{"le", "1"}}), 1);

  const std::string url = "http://127.0.0.1:" + std::to_string(ks_port_);
  const std::string token = (g->files->path() / "killswitch.token").string();
  auto engage = run_command({NQCTL_PATH, "killswitch", "engage", "--url", url, "--token-file",
                             token, "--reason", "metrics"});
  ASSERT_EQ(engage.exit_code, 0) << engage.err;
  EXPECT_EQ(metric("nodequake_killswitch_engaged"), 1);
  auto release =
      run_command({NQCTL_PATH, "killswitch", "release", "--url", url, "--token-file", token});
  ASSERT_EQ(release.exit_code, 0) << release.err;
  EXPECT_EQ(metric("nodequake_killswitch_engaged"), 0);
}

TEST_F(E2ETest, RestartKeepsPastExperimentsAndRevertsTheInterruptedOne) {
  // A long lease: the agents do not revert on their own during the test, so
  // an empty node after the restart is the restarted controller's doing.
  start_controller({}, 60s);
  auto done = nqctl({"apply", "-f", single_pod_file("before-restart", "svc-c2", "1s"), "--force"});
  ASSERT_EQ(done.exit_code, 0) << done.err;
  const std::string done_id = submitted_id(done);
  const auto done_status = wait_status(done_id, ended);
  ASSERT_EQ(done_status.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << done_status.message();

  auto cut = nqctl({"apply", "-f", single_pod_file("cut-short", "svc-a3", "60s"), "--force"});
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  const std::string cut_id = submitted_id(cut);
  ASSERT_TRUE(wait_active(1, 20s));
  // The record names the injection before the agent has it (write-ahead).
  const auto record_file = state_->path() / "state" / "experiments" / (cut_id + ".json");
  auto record = read_file(record_file);
  ASSERT_TRUE(record.ok()) << record.error().message();
  EXPECT_THAT(*record, HasSubstr("EXPERIMENT_STATE_RUNNING"));
  EXPECT_THAT(*record, HasSubstr(cut_id + "/" + g->ns + "/svc-a3"));

  ASSERT_TRUE(controller_->stop(SIGKILL).ok());
  controller_.reset();
  EXPECT_EQ(active_total(), 1u) << "the lease should still hold";

  const auto restart = SteadyClock::now();
  start_controller({}, 60s);
  // Reverted at start, before the API answered.
  EXPECT_EQ(active_total(), 0u);
  std::printf(
      "[ MEASURE  ] restart to API ready with the interrupted injection reverted: %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - restart)
              .count()));

  auto list = nqctl({"get", "-o", "json"}, "viewer");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto all = nlohmann::json::parse(list.out)["experiments"];
  ASSERT_EQ(all.size(), 2u) << all.dump(2);
  EXPECT_EQ(all[0]["id"], done_id);
  EXPECT_EQ(all[0]["state"], "EXPERIMENT_STATE_SUCCEEDED");
  EXPECT_EQ(all[0]["seed"], std::to_string(done_status.seed()));  // uint64 as JSON string
  EXPECT_EQ(all[0]["chosen"][0]["name"], "svc-c2");
  EXPECT_THAT(all[0]["summary"].get<std::string>(), HasSubstr("NetworkChaos"));
  EXPECT_EQ(all[1]["id"], cut_id);
  EXPECT_EQ(all[1]["state"], "EXPERIMENT_STATE_INTERRUPTED");
  EXPECT_THAT(all[1]["message"].get<std::string>(), HasSubstr("lease controller/" + cut_id));

  auto describe = nqctl({"describe", cut_id}, "viewer");
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_THAT(describe.out, HasSubstr("Interrupted"));
  EXPECT_THAT(describe.out, HasSubstr("svc-a3"));
  auto report = nqctl({"report", done_id, "-o", "json"}, "viewer");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_EQ(nlohmann::json::parse(report.out)["state"], "Succeeded");
  auto abort = nqctl({"abort", cut_id});
  EXPECT_EQ(abort.exit_code, 1);
  EXPECT_THAT(abort.err, HasSubstr("ended before the controller's last restart"));

  bool reverted_at_start = false;
  for (const auto& e : audit_events(cut_id))
    if (e["action"] == "revert" && e["actor"] == "controller" &&
        e["details"]["reason"] == "interrupted" && e["details"]["reverted"].get<int>() >= 1)
      reverted_at_start = true;
  EXPECT_TRUE(reverted_at_start);
  EXPECT_EQ(
      metric("nodequake_experiments_total", {{"kind", "NetworkChaos"}, {"outcome", "Interrupted"}}),
      1);
  // Saved as such, with nothing left to revert.
  record = read_file(record_file);
  ASSERT_TRUE(record.ok());
  EXPECT_THAT(*record, HasSubstr("EXPERIMENT_STATE_INTERRUPTED"));
  EXPECT_THAT(*record, ::testing::Not(HasSubstr("\"injections\"")));
}

TEST_F(E2ETest, MultiDocumentFileAppliesEveryDocumentOrTheOneNamed) {
  start_controller();
  const auto file = g->files->path() / "multi.yaml";
  auto text_a = read_file(single_pod_file("multi-a", "svc-a0", "2s"));
  auto text_b = read_file(single_pod_file("multi-b", "svc-b0", "2s"));
  ASSERT_TRUE(text_a.ok() && text_b.ok());
  write(file, *text_a + "---\n" + *text_b);

  // apply: every document, one line each.
  auto all = nqctl({"apply", "-f", file.string(), "--force"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::vector<std::string> ids;
  const std::regex re("experiment (\\S+) submitted");
  for (std::sregex_iterator it(all.out.begin(), all.out.end(), re), end; it != end; ++it)
    ids.push_back((*it)[1].str());
  ASSERT_EQ(ids.size(), 2u) << all.out;
  EXPECT_EQ(status(ids[0]).name(), g->ns + "/multi-a");
  EXPECT_EQ(status(ids[1]).name(), g->ns + "/multi-b");
  for (const auto& id : ids)
    EXPECT_EQ(wait_status(id, ended).state(), v1::EXPERIMENT_STATE_SUCCEEDED);

  // run: one, named.
  auto one =
      nqctl({"run", "-f", file.string(), "--document", "multi-b", "--force", "--poll", "500ms"});
  EXPECT_EQ(one.exit_code, 0) << one.out << one.err;
  EXPECT_EQ(status(submitted_id(one)).name(), g->ns + "/multi-b");
  auto unnamed = nqctl({"run", "-f", file.string(), "--force"});
  EXPECT_EQ(unnamed.exit_code, 1);
  EXPECT_THAT(unnamed.err, HasSubstr("holds 2 documents (" + g->ns + "/multi-a, " + g->ns +
                                     "/multi-b); name the one to run with --document"));
  auto unknown = nqctl({"apply", "-f", file.string(), "--document", "nope"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("\"nope\" is not in"));
}

}  // namespace
}  // namespace nq::testing
