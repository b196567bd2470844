// The e2e tier's fixture, shared by its test files: three real
// nodequake-agent processes acting as nodes (each with sandbox pods of its
// own, mTLS on loopback) and a real Prometheus on loopback, set up once for
// the suite; every test starts its own nodequake-controller on a fresh state
// directory, and after every test each pod's kernel state must equal its
// baseline and no agent may hold an injection.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/server/tls.h"
#include "tests/e2e/e2e_env.h"
#include "tests/node/controller/controller_env.h"
#include "tests/node/controller/prom_server.h"
#include "tests/unit/controller_d/http_call.h"

namespace nq::testing {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

// 10 pods over three nodes: 4 + 3 + 3.
inline const std::vector<int> kPodsPerNode = {4, 3, 3};
inline constexpr auto kLease = 3s;
inline const std::string kOperatorToken = "operator-token-0123456789abcdef";
inline const std::string kViewerToken = "viewer-token-0123456789abcdef";
inline const std::string kKillSwitchToken = "killswitch-token-0123456789abcdef";

struct Suite {
  TestCerts certs;
  std::vector<Node> nodes;
  std::unique_ptr<PromServer> prom;
  std::unique_ptr<TempDir> files;  // access file, tokens, experiment files
  std::string ns;
  std::string skip;
};
inline Suite* g = nullptr;

inline void write(const std::filesystem::path& p, const std::string& text) {
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

  // A controller on this test's state directory (the same one on every call,
  // so a restarted controller finds what the previous one left).
  void start_controller(std::vector<std::string> extra = {}, std::chrono::seconds lease = kLease) {
    auto port = free_local_port();
    ASSERT_TRUE(port.ok());
    ks_port_ = *port;
    auto mport = free_local_port();
    ASSERT_TRUE(mport.ok());
    metrics_port_ = *mport;
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
                                     "127.0.0.1:" + std::to_string(metrics_port_),
                                     "--lease",
                                     std::to_string(lease.count()) + "s",
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

  // The controller's /metrics text.
  std::string scrape() {
    auto body = http_get_body(metrics_port_, "/metrics");
    EXPECT_TRUE(body.ok()) << body.error().message();
    return body.ok() ? *body : "";
  }
  // One sample of it; NaN when absent.
  double metric(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    auto v = prometheus_sample(scrape(), name, labels);
    return v.ok() ? *v : std::nan("");
  }

  // The audit trail of one experiment, as JSON objects.
  std::vector<nlohmann::json> audit_events(const std::string& id) {
    auto r = nqctl({"audit", "--experiment", id, "-o", "json"}, "viewer");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<nlohmann::json> out;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  std::unique_ptr<TempDir> state_;
  std::unique_ptr<ControllerProcess> controller_;
  std::unique_ptr<nodequake::v1::Controller::Stub> stub_;
  uint16_t ks_port_ = 0;
  uint16_t metrics_port_ = 0;
};

// A pretend service whose error ratio (the Prometheus series
// nqtest_error_ratio) is `degraded` while any agent holds an injection and 0
// otherwise, as a real service would degrade under its faults. It also
// records when each injection was first and last seen on the agents, so a
// test can tell what ran one after the other and what side by side.
class DegradingService {
 public:
  struct Seen {
    SteadyClock::time_point first, last;
  };
  explicit DegradingService(double degraded) : degraded_(degraded) {
    thread_ = std::thread([this] { loop(); });
  }
  ~DegradingService() {
    stop_ = true;
    thread_.join();
    g->prom->errors().Set(0);
  }
  std::map<std::string, Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // The interval of the injections whose id contains "/<step>".
  std::optional<Seen> step(const std::string& name) const {
    std::optional<Seen> out;
    for (const auto& [id, s] : seen()) {
      if (id.size() < name.size() + 1 ||
          id.compare(id.size() - name.size() - 1, std::string::npos, "/" + name) != 0)
        continue;
      if (!out) out = s;
      out->first = std::min(out->first, s.first);
      out->last = std::max(out->last, s.last);
    }
    return out;
  }

 private:
  void loop() {
    while (!stop_) {
      size_t active = 0;
      const auto now = SteadyClock::now();
      for (auto& n : g->nodes) {
        auto list = active_injections(n);
        if (!list.ok()) continue;
        active += list->size();
        std::lock_guard lock(mu_);
        for (const auto& i : *list) {
          auto [it, added] = seen_.emplace(i.id(), Seen{now, now});
          it->second.last = now;
        }
      }
      g->prom->errors().Set(active > 0 ? degraded_ : 0);
      std::this_thread::sleep_for(50ms);
    }
  }

  const double degraded_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, Seen> seen_;
  std::thread thread_;
};

}  // namespace nq::testing
