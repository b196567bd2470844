// `nqctl sandbox load` (controller/nqctl/load.h), the workload of `make demo`,
// against real sandbox pods: its metrics count what happened on the wire --
// answers from a healthy peer, timeouts while the real agent partitions the
// path, refusals from a port nobody listens on -- under the names the
// monitoring/ recording rules read. And the CLI serves them over HTTP.
#include "controller/nqctl/load.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <thread>

#include "tests/node/core/agent_harness.h"

extern char** environ;

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using nqctl::LoadGenerator;
using nqctl::LoadMetrics;
using nqctl::LoadOptions;
using nqctl::LoadTotals;
using ::testing::HasSubstr;

constexpr const char* kGateway = "gateway";
constexpr const char* kDb = "db";

std::string serialize(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

// A child process killed (SIGKILL) and reaped by the destructor if still running.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (::posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0) pid_ = -1;
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The wait status, once it exits within `timeout`; -1 otherwise.
  int wait(std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = SandboxEnv::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    auto up = env_.up({env_.pod(kGateway), env_.pod(kDb)});
    ASSERT_TRUE(up.ok()) << up.error().message();
    auto ns = env_.netns(kGateway);
    ASSERT_TRUE(ns.ok()) << ns.error().message();
    gateway_ns_ = std::make_unique<Netns>(std::move(*ns));
    auto ip = env_.ip(kDb);
    ASSERT_TRUE(ip.ok()) << ip.error().message();
    db_ip_ = *ip;
  }

  LoadOptions options(double rate, std::chrono::nanoseconds duration,
                      std::chrono::nanoseconds timeout = 1s) const {
    LoadOptions o;
    o.ip = db_ip_;
    o.rate = rate;
    o.duration = duration;
    o.timeout = timeout;
    return o;
  }

  // Runs the generator and returns its totals; the metrics land in registry_.
  LoadTotals run(const LoadOptions& o) {
    LoadGenerator gen(*gateway_ns_, o, metrics_);
    auto totals = gen.run();
    EXPECT_TRUE(totals.ok()) << totals.error().message();
    return totals.ok() ? *totals : LoadTotals{};
  }

  double sample(const std::string& name, std::map<std::string, std::string> labels) {
    labels.emplace("namespace", env_.ns());
    auto v = prometheus_sample(serialize(*registry_), name, labels);
    return v.ok() ? *v : 0.0;  // no series: nothing counted
  }

  SandboxEnv env_;
  std::unique_ptr<Netns> gateway_ns_;
  std::string db_ip_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  LoadMetrics metrics_{*registry_, {env_.ns(), kGateway, env_.key(kDb)}};
};

TEST_F(LoadTest, CountsAnswersAndTheirLatencyFromAHealthyPeer) {
  const LoadTotals t = run(options(50, 2s));
  // Open loop: the count follows the schedule (100 in 2 s), not the answers.
  EXPECT_GE(t.requests, 95u);
  EXPECT_LE(t.requests, 100u);
  EXPECT_EQ(t.errors, 0u);
  EXPECT_EQ(sample("http_requests_total", {{"code", "200"}, {"pod", kGateway}}), t.requests);
  EXPECT_EQ(sample("http_request_errors_total", {{"reason", "timeout"}}), 0);
  // Every request is in the histogram, and on a veth + bridge they all
  // answer well within a second (the demo's SLO bound is 2 s).
  EXPECT_EQ(sample("http_request_duration_seconds_count", {{"peer", env_.key(kDb)}}), t.requests);
  EXPECT_EQ(sample("http_request_duration_seconds_bucket", {{"le", "1"}}), t.requests);
  EXPECT_GT(sample("http_request_duration_seconds_sum", {}), 0);
}

TEST_F(LoadTest, CountsTimeoutsWhileTheAgentPartitionsThePath) {
  AgentHarness agent(env_, "load");
  ASSERT_TRUE(agent.start().ok()) << agent.log_tail();
  v1::ApplyResponse resp;
  grpc::Status st = rpc(agent.stub(), &v1::Agent::Stub::Apply,
                        apply_request("load-partition", env_.ns(), kGateway,
                                      partition(v1::DIRECTION_TO, {{db_ip_ + "/32"}, {}}), 2min),
                        &resp);
  ASSERT_TRUE(st.ok()) << st.error_message() << "\n" << agent.log_tail();

  const LoadTotals cut = run(options(20, 2s, 300ms));
  EXPECT_GE(cut.requests, 38u);
  EXPECT_EQ(cut.errors, cut.requests) << "every SYN to the peer is dropped";
  EXPECT_EQ(sample("http_requests_total", {{"code", "504"}}), cut.requests);
  EXPECT_EQ(sample("http_request_errors_total", {{"reason", "timeout"}}), cut.requests);
  // A timed-out request is observed at its timeout (300 ms), not before it.
  EXPECT_EQ(sample("http_request_duration_seconds_bucket", {{"le", "0.25"}}), 0);
  EXPECT_EQ(sample("http_request_duration_seconds_bucket", {{"le", "1"}}), cut.requests);

  v1::RevertRequest rev;
  rev.set_id("load-partition");
  v1::RevertResponse rresp;
  st = rpc(agent.stub(), &v1::Agent::Stub::Revert, rev, &rresp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  const LoadTotals healed = run(options(20, 1s, 300ms));
  EXPECT_GE(healed.requests, 19u);
  EXPECT_EQ(healed.errors, 0u) << "after the revert every request is answered";
  EXPECT_EQ(sample("http_requests_total", {{"code", "200"}}), healed.requests);
  auto stopped = agent.stop(SIGTERM);
  ASSERT_TRUE(stopped.ok()) << stopped.error().message();
}

TEST_F(LoadTest, CountsRefusalsWhenNothingListens) {
  LoadOptions o = options(20, 1s);
  o.port = 8089;  // nq-echo serves 7, 9, 19 and 8080 only
  const LoadTotals t = run(o);
  EXPECT_GE(t.requests, 19u);
  EXPECT_EQ(t.errors, t.requests);
  EXPECT_EQ(sample("http_requests_total", {{"code", "503"}}), t.requests);
  EXPECT_EQ(sample("http_request_errors_total", {{"reason", "unavailable"}}), t.requests);
  EXPECT_EQ(sample("http_requests_total", {{"code", "200"}}), 0);
}

TEST_F(LoadTest, CliServesTheMetricsTheRecordingRulesRead) {
  auto port = free_local_port();
  ASSERT_TRUE(port.ok());
  Child load({NQCTL_PATH, "sandbox", "load", "--state-dir", env_.options().state_dir.string(),
              "--from", env_.key(kGateway), "--to", env_.key(kDb), "--rate", "20", "--duration",
              "4s", "--metrics", "127.0.0.1:" + std::to_string(*port)});
  ASSERT_GT(load.pid(), 0);
  std::string text;
  for (int i = 0; i < 60; ++i) {
    std::this_thread::sleep_for(100ms);
    auto body = http_get_body(*port, "/metrics");
    if (!body.ok()) continue;
    auto v = prometheus_sample(*body, "http_requests_total", {{"code", "200"}});
    if (v.ok() && *v >= 10) {
      text = *body;
      break;
    }
  }
  ASSERT_FALSE(text.empty()) << "no answered requests on the CLI's /metrics";
  // What monitoring/prometheus-chaos-rules.yaml selects on.
  EXPECT_THAT(text, HasSubstr("http_requests_total{code=\"200\",namespace=\"" + env_.ns() + "\""));
  auto buckets = prometheus_sample(text, "http_request_duration_seconds_bucket",
                                   {{"namespace", env_.ns()}, {"le", "+Inf"}});
  ASSERT_TRUE(buckets.ok()) << buckets.error().message();
  EXPECT_GE(*buckets, 10);
  const int status = load.wait(10s);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
}

TEST(LoadPlan, ClassifiesOutcomesAsAGatewayWouldAnswer) {
  using nqctl::classify;
  EXPECT_EQ(classify(200).code, "200");
  EXPECT_FALSE(classify(200).error());
  EXPECT_EQ(classify(503).reason, "http_503");
  EXPECT_EQ(classify(Error::status(Code::kDeadlineExceeded, "x")).code, "504");
  EXPECT_EQ(classify(Error::status(Code::kUnavailable, "x")).code, "503");
  EXPECT_EQ(classify(Error::from_errno(ECONNRESET, "recv")).code, "502");
}

TEST(LoadPlan, ScheduleAndWorkers) {
  EXPECT_EQ(nqctl::due_offset(0, 20), 0ns);
  EXPECT_EQ(nqctl::due_offset(20, 20), 1s);
  EXPECT_EQ(nqctl::due_offset(3, 3), 1s);  // no drift from a rounded period
  EXPECT_EQ(nqctl::workers_for(20, 1s), 21);
  EXPECT_EQ(nqctl::workers_for(20, 300ms), 7);
  EXPECT_EQ(nqctl::workers_for(10000, 60s), 512);
  LoadOptions o;
  o.ip = "10.0.0.1";
  o.rate = 0;
  auto st = nqctl::validate(o);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.error().message(), HasSubstr("--rate"));
}

}  // namespace
}  // namespace nq::testing
