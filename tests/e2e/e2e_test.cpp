// The e2e tier: a real nodequake-controller process, three real
// nodequake-agent processes acting as nodes (each with sandbox pods of its
// own, mTLS on loopback), a real Prometheus on loopback, and nqctl. The
// agents, pods and Prometheus are shared by the suite (they take most of the
// start-up time); every test starts its own controller on a fresh state
// directory, and after every test each pod's kernel state must equal its
// baseline and no agent may hold an injection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "agent/server/tls.h"
#include "tests/e2e/e2e_env.h"
#include "tests/node/controller/controller_env.h"
#include "tests/node/controller/prom_server.h"
#include "tests/unit/controller_d/http_call.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

// 10 pods over three nodes: 4 + 3 + 3.
const std::vector<int> kPodsPerNode = {4, 3, 3};
constexpr auto kLease = 3s;
const std::string kOperatorToken = "operator-token-0123456789abcdef";
const std::string kViewerToken = "viewer-token-0123456789abcdef";
const std::string kKillSwitchToken = "killswitch-token-0123456789abcdef";

struct Suite {
  TestCerts certs;
  std::vector<Node> nodes;
  std::unique_ptr<PromServer> prom;
  std::unique_ptr<TempDir> files;  // access file, tokens, experiment files
  std::string ns;
  std::string skip;
};
Suite* g = nullptr;

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

class E2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(pin_grpc_tls13().ok());
    g = new Suite();
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) {
      g->skip = why;
      return;
    }
    if (std::string why = PromServer::unavailable_reason(); !why.empty()) {
      g->skip = why;
      return;
    }
    ASSERT_EQ(g->certs.error(), "");
    for (size_t i = 0; i < kPodsPerNode.size(); ++i) {
      Node n;
      n.env = std::make_unique<SandboxEnv>();
      const std::string letter(1, char('a' + i));
      n.name = "node-" + letter + n.env->suffix();
      std::vector<sandbox::PodSpec> specs;
      for (int p = 0; p < kPodsPerNode[i]; ++p) {
        n.pods.push_back("svc-" + letter + std::to_string(p));
        specs.push_back(n.env->pod(n.pods.back()));
      }
      n.harness = std::make_unique<AgentHarness>(*n.env, "e2e-" + letter);
      auto up = n.env->up(specs);
      ASSERT_TRUE(up.ok()) << up.error().message();
      auto base = capture_pods(*n.env, n.pods);
      ASSERT_TRUE(base.ok()) << base.error().message();
      n.baseline = std::move(*base);
      Status st = start_agent(n, g->certs);
      ASSERT_TRUE(st.ok()) << st.error().message() << "\n" << n.harness->log_tail();
      g->nodes.push_back(std::move(n));
    }
    g->ns = g->nodes[0].env->ns();
    g->prom = std::make_unique<PromServer>();
    g->prom->errors().Set(0);
    g->prom->latency().Set(0.1);
    Status st = g->prom->start();
    ASSERT_TRUE(st.ok()) << st.error().message();

    g->files = std::make_unique<TempDir>("e2e-files");
    const auto& d = g->files->path();
    write(d / "operator.token", kOperatorToken + "\n");
    write(d / "viewer.token", kViewerToken + "\n");
    write(d / "killswitch.token", kKillSwitchToken + "\n");
    write(d / "wrong.token", "not-the-right-token-at-all\n");
    write(d / "access.yaml",
          "tokens:\n"
          "  - {name: ci, role: operator, tokenFile: operator.token}\n"
          "  - {name: dashboard, role: viewer, tokenFile: viewer.token}\n");
  }

  static void TearDownTestSuite() {
    if (g) {
      for (auto& n : g->nodes)
        if (n.agent) (void)n.agent->stop(SIGTERM);
      delete g;
      g = nullptr;
    }
  }

  void SetUp() override {
    if (!g->skip.empty()) GTEST_SKIP() << g->skip;
    ASSERT_EQ(g->nodes.size(), kPodsPerNode.size()) << "suite set-up failed";
    state_ = std::make_unique<TempDir>("e2e-ctl");
    g->prom->errors().Set(0);
  }

  void TearDown() override {
    if (!g->skip.empty() || g->nodes.size() != kPodsPerNode.size()) return;
    if (controller_) (void)controller_->stop(SIGTERM);
    for (auto& n : g->nodes) {
      auto active = active_injections(n);
      ASSERT_TRUE(active.ok()) << active.error().message();
      EXPECT_TRUE(active->empty()) << n.name << " still has " << active->size() << " injection(s)";
      // A test that engaged an agent's kill switch must not leave it engaged.
      v1::ReleaseRequest rel;
      rel.set_actor("e2e-teardown");
      v1::ReleaseResponse resp;
      (void)rpc(n.agent->stub(), &v1::Agent::Stub::Release, rel, &resp);
      auto now = capture_pods(*n.env, n.pods);
      ASSERT_TRUE(now.ok()) << now.error().message();
      EXPECT_EQ(diff(n.baseline, *now), "") << "kernel state left behind on " << n.name;
    }
  }

  std::string state_file(const std::string& name) const { return (state_->path() / name).string(); }
  std::string socket() const { return state_file("controller.sock"); }

  void start_controller(std::vector<std::string> extra = {}) {
    auto port = free_local_port();
    ASSERT_TRUE(port.ok());
    ks_port_ = *port;
    const auto& d = g->files->path();
    std::vector<std::string> args = {"--socket",
                                     socket(),
                                     "--state-dir",
                                     state_file("state"),
                                     "--access-file",
                                     (d / "access.yaml").string(),
                                     "--prometheus-url",
                                     g->prom->url(),
                                     "--tls-cert",
                                     g->certs.file("controller.crt"),
                                     "--tls-key",
                                     g->certs.file("controller.key"),
                                     "--tls-ca",
                                     g->certs.file("ca.crt"),
                                     "--killswitch-listen",
                                     "127.0.0.1:" + std::to_string(ks_port_),
                                     "--killswitch-token-file",
                                     (d / "killswitch.token").string(),
                                     "--metrics-address",
                                     "127.0.0.1:0",
                                     "--lease",
                                     std::to_string(kLease.count()) + "s",
                                     "--abort-interval",
                                     "500ms",
                                     "--recovery-timeout",
                                     "10s",
                                     "--recovery-poll",
                                     "500ms"};
    for (const auto& n : g->nodes) args.insert(args.end(), {"--agent", n.target});
    args.insert(args.end(), extra.begin(), extra.end());
    auto c =
        ControllerProcess::start({args, socket(), kOperatorToken, state_file("controller.log")});
    ASSERT_TRUE(c.ok()) << c.error().message();
    controller_ = std::move(*c);
    stub_ = controller_stub(socket());
    ASSERT_TRUE(stub_);
  }

  CommandResult nqctl(std::vector<std::string> args, const std::string& token_file = "operator") {
    args.insert(args.begin(), NQCTL_PATH);
    std::map<std::string, std::string> env = {{"NQ_CONTROLLER", "unix://" + socket()}};
    if (!token_file.empty())
      env["NQ_TOKEN_FILE"] = (g->files->path() / (token_file + ".token")).string();
    return run_command(args, env);
  }

  // A NetworkChaos bandwidth experiment over every opted-in pod of the test
  // namespace (tbf: on every kernel this project runs on).
  std::string experiment_file(const std::string& name, const std::string& mode_value,
                              const std::string& duration, const std::string& abort = "") {
    const auto path = g->files->path() / (name + ".yaml");
    write(path,
          "apiVersion: chaos-mesh.org/v1alpha1\n"
          "kind: NetworkChaos\n"
          "metadata: {name: " +
              name + ", namespace: " + g->ns +
              "}\n"
              "spec:\n"
              "  action: bandwidth\n" +
              mode_value +
              "  selector:\n"
              "    namespaces: [" +
              g->ns +
              "]\n"
              "    labelSelectors: {chaos-ready: \"true\"}\n"
              "  bandwidth: {rate: 1mbps}\n"
              "  duration: " +
              duration + "\n" + abort);
    return path.string();
  }

  // "experiment <id> submitted (seed <n>)"
  static std::string submitted_id(const CommandResult& r) {
    std::smatch m;
    const std::regex re("experiment (\\S+) submitted \\(seed ([0-9]+)\\)");
    return std::regex_search(r.out, m, re) ? m[1].str() : "";
  }

  v1::ExperimentStatus status(const std::string& id) {
    v1::ExperimentStatus s;
    grpc::Status st = get_experiment(*stub_, kOperatorToken, id, &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return s;
  }

  // Polls until `pred(status)` or the timeout; the last status.
  template <class Pred>
  v1::ExperimentStatus wait_status(const std::string& id, Pred pred,
                                   std::chrono::milliseconds timeout = 20s) {
    const auto deadline = SteadyClock::now() + timeout;
    v1::ExperimentStatus s = status(id);
    while (!pred(s) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      s = status(id);
    }
    return s;
  }

  static bool ended(const v1::ExperimentStatus& s) {
    return s.state() != v1::EXPERIMENT_STATE_PENDING && s.state() != v1::EXPERIMENT_STATE_RUNNING;
  }

  // Active injections per node.
  std::vector<size_t> active_per_node() {
    std::vector<size_t> out;
    for (auto& n : g->nodes) {
      auto a = active_injections(n);
      EXPECT_TRUE(a.ok()) << a.error().message();
      out.push_back(a.ok() ? a->size() : 0);
    }
    return out;
  }
  size_t active_total() {
    size_t t = 0;
    for (size_t n : active_per_node()) t += n;
    return t;
  }
  // Polls until the agents hold `want` injections in total; how long it took.
  std::optional<std::chrono::milliseconds> wait_active(size_t want,
                                                       std::chrono::milliseconds timeout) {
    const auto start = SteadyClock::now();
    while (SteadyClock::now() - start < timeout) {
      if (active_total() == want)
        return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
      std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
  }

  // Pods whose kernel state differs from the baseline, "node/pod".
  std::set<std::string> changed_pods() {
    std::set<std::string> out;
    for (auto& n : g->nodes) {
      auto now = capture_pods(*n.env, n.pods);
      EXPECT_TRUE(now.ok()) << now.error().message();
      if (!now.ok()) continue;
      for (const auto& pod : n.pods) {
        PodStates a{{pod, n.baseline.at(pod)}}, b{{pod, now->at(pod)}};
        if (!diff(a, b).empty()) out.insert(pod);
      }
    }
    return out;
  }

  std::unique_ptr<TempDir> state_;
  std::unique_ptr<ControllerProcess> controller_;
  std::unique_ptr<nodequake::v1::Controller::Stub> stub_;
  uint16_t ks_port_ = 0;
};

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
