// The controller's fan-out against three real agent processes, each a "node"
// with a sandbox pod of its own, over mTLS on loopback: selection across
// nodes, all-or-nothing injection with rollback, revert, lease renewal and
// expiry, and the kill switch (fan-out and its HTTP endpoint), also with
// agents that are dead or hung. After every test the pods' kernel state must
// be what it was before.
#include "controller/fanout/fanout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/server/tls.h"
#include "common/clock.h"
#include "controller/fanout/ids.h"
#include "controller/fanout/renewer.h"
#include "controller/killswitch/http.h"
#include "controller/killswitch/killswitch.h"
#include "tests/node/controller/controller_env.h"
#include "tests/unit/controller_d/http_call.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

constexpr int kNodes = 3;

class FanOutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(pin_grpc_tls13().ok()); }

  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(certs_.error(), "");
    for (int i = 0; i < kNodes; ++i) {
      Node n;
      n.env = std::make_unique<SandboxEnv>();
      n.name = "node-" + std::string(1, char('a' + i)) + n.env->suffix();
      n.pods = {"web-" + std::string(1, char('a' + i))};
      n.harness = std::make_unique<AgentHarness>(*n.env, "ctl-" + n.pods[0]);
      auto up = n.env->up({n.env->pod(n.pods[0])});
      ASSERT_TRUE(up.ok()) << up.error().message();
      auto base = capture_pods(*n.env, n.pods);
      ASSERT_TRUE(base.ok()) << base.error().message();
      n.baseline = std::move(*base);
      Status st = start_agent(n, certs_);
      ASSERT_TRUE(st.ok()) << st.error().message() << "\n" << n.harness->log_tail();
      nodes_.push_back(std::move(n));
    }
    for (auto& n : nodes_) agents_.push_back(n.target);
    ns_ = nodes_[0].env->ns();
    started_ = true;
  }

  void TearDown() override {
    if (!started_) return;
    for (auto& n : nodes_) {
      // SIGTERM: the agent reverts what is still active on its way out; the
      // test must not have left anything, which the kernel check shows.
      auto active = active_injections(n);
      ASSERT_TRUE(active.ok()) << active.error().message();
      EXPECT_TRUE(active->empty()) << n.name << " still has " << active->size() << " injection(s)";
      auto status = n.agent->stop(SIGTERM);
      EXPECT_TRUE(status.ok());
      auto now = capture_pods(*n.env, n.pods);
      ASSERT_TRUE(now.ok()) << now.error().message();
      EXPECT_EQ(diff(n.baseline, *now), "") << "kernel state left behind on " << n.name;
    }
  }

  // One injection per node, on its pod.
  std::vector<fanout::PlannedInjection> plan_all() const {
    std::vector<fanout::PlannedInjection> plan;
    for (const auto& n : nodes_) plan.push_back({n.target, bandwidth_request(ns_, n.pods[0]), ""});
    return plan;
  }

  size_t active_total() {
    size_t total = 0;
    for (auto& n : nodes_) {
      auto a = active_injections(n);
      EXPECT_TRUE(a.ok()) << a.error().message();
      if (a.ok()) total += a->size();
    }
    return total;
  }

  TestCerts certs_;
  std::vector<Node> nodes_;
  std::vector<std::string> agents_;
  std::string ns_;
  bool started_ = false;
  fanout::AgentPool pool_{certs_.controller_pool()};
  fanout::FanOut fanout_{pool_, {}};
};

TEST_F(FanOutTest, ListTargetsGathersEveryNodeAndNamesTheDeadOne) {
  auto free_port = free_local_port();
  ASSERT_TRUE(free_port.ok());
  const std::string dead = "127.0.0.1:" + std::to_string(*free_port);
  std::vector<std::string> agents = agents_;
  agents.push_back(dead);
  v1::ListTargetsRequest req;
  req.mutable_selector()->add_namespaces(ns_);
  (*req.mutable_selector()->mutable_match_labels())["chaos-ready"] = "true";
  auto result = fanout_.list_targets(agents, req);
  ASSERT_EQ(result.nodes.size(), 3u);
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_EQ(result.nodes[i].node, nodes_[i].name);
    ASSERT_EQ(result.nodes[i].pods.size(), 1u);
    EXPECT_EQ(result.nodes[i].pods[0].ref().name(), nodes_[i].pods[0]);
  }
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].agent, dead);
  EXPECT_EQ(result.errors[0].error.status_code(), Code::kUnavailable);
}

TEST_F(FanOutTest, AppliesEverywhereWithLeasesAndReverts) {
  fanout::ApplyOptions opts{"exp-ok", 30s, true};
  auto report = fanout_.apply(plan_all(), opts);
  ASSERT_FALSE(report.error) << report.error->message();
  ASSERT_EQ(report.injections.size(), 3u);
  for (int i = 0; i < kNodes; ++i) {
    auto active = active_injections(nodes_[i]);
    ASSERT_TRUE(active.ok());
    ASSERT_EQ(active->size(), 1u);
    EXPECT_EQ((*active)[0].id(), "exp-ok/" + ns_ + "/" + nodes_[i].pods[0]);
    EXPECT_EQ((*active)[0].lease().holder(), "controller/exp-ok");
  }
  // Applying the same plan again is a no-op on the agents (same ids).
  auto again = fanout_.apply(plan_all(), opts);
  ASSERT_FALSE(again.error) << again.error->message();
  EXPECT_EQ(active_total(), 3u);

  // A renewal round reaches every agent and renews one injection on each.
  fanout::LeaseRenewer renewer(fanout_, [&] { return agents_; });
  renewer.add("exp-ok", 30s);
  auto renewed = renewer.renew_due(/*force=*/true);
  ASSERT_EQ(renewed.count("exp-ok"), 1u);
  for (const auto& o : renewed["exp-ok"]) {
    EXPECT_FALSE(o.error) << o.error->message();
    EXPECT_EQ(o.count, 1u) << o.agent;
  }

  auto reverted = fanout_.revert(report.applied());
  for (const auto& r : reverted) EXPECT_FALSE(r.error) << r.error->message();
  EXPECT_EQ(active_total(), 0u);
}

TEST_F(FanOutTest, OneRefusalRollsBackEverythingAndNamesAgentPodAndCause) {
  auto plan = plan_all();
  // The third node has no such pod: its agent refuses with NOT_FOUND.
  plan[2].request = bandwidth_request(ns_, "missing-pod");
  auto report = fanout_.apply(plan, {"exp-fail", 30s, true});
  ASSERT_TRUE(report.error);
  const std::string msg = report.error->message();
  EXPECT_EQ(report.error->status_code(), Code::kNotFound) << msg;
  EXPECT_THAT(msg, HasSubstr(nodes_[2].target));
  EXPECT_THAT(msg, HasSubstr(ns_ + "/missing-pod"));
  EXPECT_THAT(msg, HasSubstr("not found"));
  EXPECT_THAT(msg, HasSubstr("rolled back 2"));
  EXPECT_TRUE(report.rolled_back);
  for (const auto& r : report.rollback) EXPECT_FALSE(r.error) << r.error->message();
  EXPECT_EQ(active_total(), 0u) << "an injection survived the rollback";
}

TEST_F(FanOutTest, UnknownOutcomesAreRolledBackToo) {
  // Deadlines far too short for an Apply: each call may or may not have been
  // carried out by its agent. Whatever happened, nothing may stay.
  fanout::FanOutOptions o;
  o.apply_deadline = 2ms;
  fanout::FanOut hasty(pool_, o);
  // Warm the channels so the calls do reach the agents.
  (void)hasty.list_targets(agents_, {});
  auto report = hasty.apply(plan_all(), {"exp-hasty", 30s, true});
  if (!report.error) {
    GTEST_LOG_(INFO) << "every Apply beat a 2 ms deadline; reverting normally";
    (void)hasty.revert(report.applied());
  } else {
    EXPECT_TRUE(report.rolled_back);
    size_t unknown = 0;
    for (const auto& i : report.injections) unknown += i.outcome_unknown ? 1 : 0;
    EXPECT_GT(unknown, 0u) << report.error->message();
    // Rolled back: every injection whose outcome was unknown, and the applied ones.
    EXPECT_EQ(report.rollback.size(), 3u);
  }
  EXPECT_EQ(active_total(), 0u);
}

TEST_F(FanOutTest, KillSwitchRevertsEverywhereWithinASecondDespiteDeadAgents) {
  auto report = fanout_.apply(plan_all(), {"exp-ks", 30s, true});
  ASSERT_FALSE(report.error) << report.error->message();
  ASSERT_EQ(active_total(), 3u);

  auto free_port = free_local_port();
  ASSERT_TRUE(free_port.ok());
  SilentListener hung;
  std::vector<std::string> agents = agents_;
  agents.push_back("127.0.0.1:" + std::to_string(*free_port));  // refused
  agents.push_back(hung.target());                              // never answers

  const auto t0 = SteadyClock::now();
  auto outcomes = fanout_.revert_all(agents, "sre:test", "node test");
  const auto took = SteadyClock::now() - t0;
  EXPECT_LT(took, 1s) << "RevertAll took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  ASSERT_EQ(outcomes.size(), 5u);
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_FALSE(outcomes[i].error) << outcomes[i].error->message();
    EXPECT_EQ(outcomes[i].count, 1u);
    EXPECT_TRUE(outcomes[i].killswitch.engaged());
  }
  ASSERT_TRUE(outcomes[3].error);
  ASSERT_TRUE(outcomes[4].error);
  EXPECT_EQ(outcomes[4].error->status_code(), Code::kDeadlineExceeded)
      << outcomes[4].error->message();
  EXPECT_EQ(active_total(), 0u);

  // Engaged agents refuse new injections; the failure rolls back cleanly.
  auto refused = fanout_.apply(plan_all(), {"exp-after", 30s, true});
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(refused.error->status_code(), Code::kFailedPrecondition);
  EXPECT_THAT(refused.error->message(), HasSubstr("kill switch"));

  auto released = fanout_.release(agents_, "sre:test");
  for (const auto& o : released) {
    EXPECT_FALSE(o.error) << o.error->message();
    EXPECT_FALSE(o.killswitch.engaged());
  }
  auto after = fanout_.apply(plan_all(), {"exp-after", 30s, true});
  ASSERT_FALSE(after.error) << after.error->message();
  for (const auto& r : fanout_.revert(after.applied())) EXPECT_FALSE(r.error);
}

TEST_F(FanOutTest, LeasesHoldWhileRenewedAndExpireWhenTheRenewerStops) {
  // 2 s leases: renewed every ~0.67 s while the renewer runs.
  auto report = fanout_.apply(plan_all(), {"exp-lease", 2s, true});
  ASSERT_FALSE(report.error) << report.error->message();
  {
    fanout::LeaseRenewer renewer(fanout_, [&] { return agents_; });
    renewer.add("exp-lease", 2s);
    renewer.start();
    std::this_thread::sleep_for(3500ms);
    EXPECT_EQ(active_total(), 3u) << "a renewed lease expired";
  }  // the renewer stops, as when the controller dies
  const auto deadline = SteadyClock::now() + 5s;
  while (active_total() > 0 && SteadyClock::now() < deadline) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(active_total(), 0u) << "leases did not expire after the renewer stopped";
}

TEST_F(FanOutTest, HttpKillSwitchNeedsTheTokenAndReportsEveryAgent) {
  TempDir dir("ctl-ks");
  const std::string token = "node-test-token-" + std::to_string(::getpid()) + "-abcdef";
  std::ofstream(dir.path() / "token") << token << "\n";
  SystemClock clock;
  killswitch::FanOutBackend backend(fanout_,
                                    [&]() -> Result<std::vector<std::string>> { return agents_; });
  auto audit = audit::AuditLog::open(dir.path() / "audit.log");
  ASSERT_TRUE(audit.ok());
  auto ks = killswitch::KillSwitch::open(dir.path() / "ks.json", backend, &*audit, clock);
  ASSERT_TRUE(ks.ok()) << ks.error().message();
  killswitch::HttpOptions ho;
  ho.listen = "127.0.0.1:0";
  ho.token_file = (dir.path() / "token").string();
  auto server = killswitch::HttpServer::start(ho, **ks);
  ASSERT_TRUE(server.ok()) << server.error().message();
  const std::string url =
      "http://127.0.0.1:" + std::to_string((*server)->port()) + "/v1/killswitch";

  auto report = fanout_.apply(plan_all(), {"exp-http", 30s, true});
  ASSERT_FALSE(report.error) << report.error->message();

  EXPECT_EQ(http_call("POST", url).status, 401);
  EXPECT_EQ(http_call("POST", url, token + "x").status, 401);
  EXPECT_EQ(active_total(), 3u) << "an unauthenticated request reverted something";

  const auto t0 = SteadyClock::now();
  auto engaged = http_call("POST", url, token, R"({"reason":"node test","actor":"bob"})");
  EXPECT_LT(SteadyClock::now() - t0, 1s);
  ASSERT_EQ(engaged.status, 200) << engaged.body << engaged.curl_error;
  const auto j = nlohmann::json::parse(engaged.body);
  EXPECT_TRUE(j["engaged"].get<bool>());
  EXPECT_TRUE(j["complete"].get<bool>()) << engaged.body;
  ASSERT_EQ(j["agents"].size(), 3u);
  for (const auto& a : j["agents"]) {
    EXPECT_TRUE(a["ok"].get<bool>()) << a.dump();
    EXPECT_EQ(a["reverted"], 1);
    EXPECT_TRUE(a["engaged"].get<bool>());
  }
  EXPECT_EQ(active_total(), 0u);

  auto status = http_call("GET", url, token);
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(nlohmann::json::parse(status.body)["actor"], "killswitch-token:bob");

  auto released = http_call("DELETE", url, token);
  ASSERT_EQ(released.status, 200) << released.body;
  for (const auto& a : nlohmann::json::parse(released.body)["agents"])
    EXPECT_FALSE(a["engaged"].get<bool>()) << a.dump();

  auto events = audit::read_log(dir.path() / "audit.log");
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].action, audit::Action::kKillSwitchEngage);
  EXPECT_EQ((*events)[1].action, audit::Action::kKillSwitchRelease);
}

}  // namespace
}  // namespace nq::testing
