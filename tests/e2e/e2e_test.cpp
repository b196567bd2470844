// The e2e tier: a real nodequake-controller process, three real
// nodequake-agent processes acting as nodes, a real Prometheus on loopback,
// and nqctl (fixture: e2e_fixture.h). Selection, injection, abort rules,
// kill -9, the kill switch, a failing agent, access control.
#include "tests/e2e/e2e_fixture.h"

namespace nq::testing {
namespace {

TEST_F(E2ETest, FixedPercentThirtyChoosesThreeOfTenPodsAcrossNodesInjectsAndReverts) {
  start_controller();
  const auto file = experiment_file("thirty", "  mode: fixed-percent\n  value: \"30\"\n", "4s");
  auto r = nqctl({"apply", "-f", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = submitted_id(r);
  ASSERT_FALSE(id.empty()) << r.out;

  auto s = wait_status(id, [](const auto& st) { return st.injections() == 3 || ended(st); });
  ASSERT_EQ(s.state(), v1::EXPERIMENT_STATE_RUNNING) << s.message();
  EXPECT_EQ(s.candidates(), 10u);
  ASSERT_EQ(s.chosen_size(), 3);
  EXPECT_EQ(active_total(), 3u);
  // Exactly the chosen pods carry the fault in the kernel.
  std::set<std::string> chosen;
  for (const auto& c : s.chosen()) chosen.insert(c.name());
  EXPECT_EQ(changed_pods(), chosen);

  // The seed is reported (and audited below) so the choice can be repeated.
  s = wait_status(id, ended, 20s);
  EXPECT_EQ(s.state(), v1::EXPERIMENT_STATE_SUCCEEDED) << s.message();
  EXPECT_EQ(s.injections(), 0u);
  EXPECT_EQ(active_total(), 0u);
  EXPECT_TRUE(changed_pods().empty());

  // nqctl get / describe / report / audit.
  auto get = nqctl({"get", id, "-o", "json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  auto j = nlohmann::json::parse(get.out);
  EXPECT_EQ(j["state"], "EXPERIMENT_STATE_SUCCEEDED");
  auto audit = nqctl({"audit", "--experiment", id, "-o", "json"}, "viewer");
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  std::vector<std::string> actions;
  std::istringstream lines(audit.out);
  for (std::string line; std::getline(lines, line);) {
    auto e = nlohmann::json::parse(line);
    actions.push_back(e["action"]);
    if (e["action"] == "submit" || e["action"] == "inject") {
      EXPECT_EQ(e["actor"], "token:ci");
    }
    if (e["action"] == "selection") {
      EXPECT_EQ(e["details"]["seed"].get<uint64_t>(), s.seed());
    }
  }
  EXPECT_THAT(actions, ::testing::ElementsAre("submit", "selection", "inject", "revert"));
  auto report = nqctl({"report", id, "-o", "json"}, "viewer");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_EQ(nlohmann::json::parse(report.out)["chosen"].size(), 3u);
}

TEST_F(E2ETest, AbortRuleThatBreachesAbortsAndReverts) {
  start_controller();
  const auto file = experiment_file(
      "guarded", "  mode: fixed\n  value: \"2\"\n", "60s",
      "  abortWhen:\n"
      "    - {name: error-rate, query: nqtest_error_ratio, operator: \">\", threshold: 0.1}\n");
  CommandResult run;
  std::thread follower([&] { run = nqctl({"run", "-f", file, "--poll", "500ms"}); });
  ASSERT_TRUE(wait_active(2, 20s)) << "the experiment never injected";
  const auto breached_at = SteadyClock::now();
  g->prom->errors().Set(0.5);
  // Scrape (1 s) + evaluation (0.5 s) + revert.
  const auto reverted = wait_active(0, 15s);
  const auto took = SteadyClock::now() - breached_at;
  // The service "recovers": the run measures how long that took.
  g->prom->errors().Set(0);
  follower.join();
  ASSERT_TRUE(reverted) << "the breach did not revert the experiment";
  EXPECT_LT(took, 6s);
  EXPECT_EQ(run.exit_code, 3) << run.out << run.err;  // Aborted
  EXPECT_THAT(run.out, HasSubstr("Aborted"));
  EXPECT_THAT(run.out, HasSubstr("abort rule error-rate: 0.5 > 0.1"));
  EXPECT_EQ(active_total(), 0u);
  const std::string id = submitted_id(run);
  auto s = status(id);
  EXPECT_EQ(s.abort_rule(), "error-rate");
  EXPECT_DOUBLE_EQ(s.abort_value(), 0.5);
  // The progress lines carried the rule's live value.
  EXPECT_THAT(run.err, HasSubstr("error-rate="));
  // The report: recovered once the error ratio was back below the bound.
  auto report = nqctl({"report", id, "-o", "json"}, "viewer");
  ASSERT_EQ(report.exit_code, 0) << report.err;
  auto j = nlohmann::json::parse(report.out);
  EXPECT_EQ(j["state"], "Aborted");
  EXPECT_EQ(j["abort"]["rule"], "error-rate");
  EXPECT_TRUE(j["slo"]["recovery"]["recovered"]) << j.dump(2);
}

TEST_F(E2ETest, KilledControllerLeavesNothingBehindAfterTheLease) {
  start_controller();
  const auto file = experiment_file("orphan", "  mode: fixed-percent\n  value: \"30\"\n", "60s");
  auto r = nqctl({"apply", "-f", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(wait_active(3, 20s));
  auto st = controller_->stop(SIGKILL);
  ASSERT_TRUE(st.ok());
  controller_.reset();
  const auto took = wait_active(0, kLease + 5s);
  ASSERT_TRUE(took) << "agents still hold injections long after the lease";
  // Renewals stop with the controller; the lease (3 s) plus the agents'
  // expiry tick bound the rest.
  EXPECT_LE(*took, kLease + 2s);
  std::printf(
      "[ MEASURE  ] agents reverted %lld ms after kill -9 of the controller (lease %llds)\n",
      static_cast<long long>(took->count()), static_cast<long long>(kLease.count()));
}

TEST_F(E2ETest, KillSwitchRevertsEverywhereBlocksNewExperimentsAndNeedsTheToken) {
  start_controller();
  const auto file = experiment_file("victim", "  mode: fixed-percent\n  value: \"30\"\n", "60s");
  auto r = nqctl({"apply", "-f", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = submitted_id(r);
  ASSERT_TRUE(wait_active(3, 20s));

  const std::string url = "http://127.0.0.1:" + std::to_string(ks_port_) + "/v1/killswitch";
  EXPECT_EQ(http_call("POST", url).status, 401);
  EXPECT_EQ(http_call("POST", url, "not-the-right-token-at-all").status, 401);
  EXPECT_EQ(active_total(), 3u) << "a refused request changed something";
  auto refused = run_command({NQCTL_PATH, "killswitch", "engage", "--url",
                              "http://127.0.0.1:" + std::to_string(ks_port_), "--token-file",
                              (g->files->path() / "wrong.token").string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("401"));

  const auto start = SteadyClock::now();
  auto engaged = run_command({NQCTL_PATH, "killswitch", "engage", "--url",
                              "http://127.0.0.1:" + std::to_string(ks_port_), "--token-file",
                              (g->files->path() / "killswitch.token").string(), "--reason", "e2e",
                              "-o", "json"});
  const auto took = SteadyClock::now() - start;
  ASSERT_EQ(engaged.exit_code, 0) << engaged.out << engaged.err;
  auto j = nlohmann::json::parse(engaged.out);
  EXPECT_TRUE(j["engaged"]);
  EXPECT_TRUE(j["complete"]);
  EXPECT_EQ(j["agents"].size(), 3u);
  EXPECT_EQ(active_total(), 0u);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(wait_status(id, ended, 10s).state(), v1::EXPERIMENT_STATE_REVERTED);

  // New experiments are refused, also by a controller restarted meanwhile.
  auto blocked = nqctl({"apply", "-f", file});
  EXPECT_EQ(blocked.exit_code, 1);
  EXPECT_THAT(blocked.err, HasSubstr("kill switch is engaged"));
  ASSERT_TRUE(controller_->stop(SIGTERM).ok());
  controller_.reset();
  start_controller();
  blocked = nqctl({"apply", "-f", file});
  EXPECT_EQ(blocked.exit_code, 1);
  EXPECT_THAT(blocked.err, HasSubstr("kill switch is engaged"));
  for (auto& n : g->nodes) {
    v1::ListResponse list;
    ASSERT_TRUE(rpc(n.agent->stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
    EXPECT_TRUE(list.killswitch().engaged()) << n.name;
  }

  auto released = run_command({NQCTL_PATH, "killswitch", "release", "--url",
                               "http://127.0.0.1:" + std::to_string(ks_port_), "--token-file",
                               (g->files->path() / "killswitch.token").string()});
  ASSERT_EQ(released.exit_code, 0) << released.err;
  EXPECT_THAT(released.out, HasSubstr("released"));
  for (auto& n : g->nodes) {
    v1::ListResponse list;
    ASSERT_TRUE(rpc(n.agent->stub(), &v1::Agent::Stub::List, v1::ListRequest{}, &list).ok());
    EXPECT_FALSE(list.killswitch().engaged()) << n.name;
  }
}

TEST_F(E2ETest, AnAgentFailingMidFanOutLeavesNothingAppliedAnywhere) {
  start_controller();
  // Node c's own kill switch (its Unix socket, as an SRE on the node would)
  // makes its agent refuse every Apply while a and b accept theirs.
  auto& c = g->nodes[2];
  v1::RevertAllRequest ra;
  ra.set_actor("e2e");
  ra.set_reason("refuse applies on node c");
  v1::RevertAllResponse ra_resp;
  ASSERT_TRUE(rpc(c.agent->stub(), &v1::Agent::Stub::RevertAll, ra, &ra_resp).ok());

  const auto file = experiment_file("everywhere", "  mode: all\n", "30s");
  auto r = nqctl({"apply", "-f", file, "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = submitted_id(r);
  auto s = wait_status(id, ended, 30s);
  EXPECT_EQ(s.state(), v1::EXPERIMENT_STATE_FAILED);
  EXPECT_THAT(s.message(), HasSubstr(c.target));
  EXPECT_THAT(s.message(), HasSubstr("rolled back 7"));
  EXPECT_EQ(active_total(), 0u);
  EXPECT_TRUE(changed_pods().empty());
}

TEST_F(E2ETest, CallersAreAuthenticatedAndAuthorizedByRole) {
  start_controller();
  const auto file = experiment_file("rbac", "  mode: one\n", "2s");
  auto anonymous = nqctl({"get"}, "");
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("no credentials"));
  auto wrong = nqctl({"get"}, "wrong");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("not valid"));
  auto viewer_get = nqctl({"get"}, "viewer");
  EXPECT_EQ(viewer_get.exit_code, 0) << viewer_get.err;
  auto viewer_apply = nqctl({"apply", "-f", file}, "viewer");
  EXPECT_EQ(viewer_apply.exit_code, 1);
  EXPECT_THAT(viewer_apply.err,
              HasSubstr("Submit needs role operator; token:dashboard has viewer"));
  // Above the blast-radius ceiling without --force: refused by the run.
  const auto wide = experiment_file("wide", "  mode: all\n", "2s");
  auto r = nqctl({"apply", "-f", wide});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = wait_status(submitted_id(r), ended, 20s);
  EXPECT_EQ(s.state(), v1::EXPERIMENT_STATE_FAILED);
  EXPECT_THAT(s.message(), HasSubstr("blast radius"));
}

}  // namespace
}  // namespace nq::testing
