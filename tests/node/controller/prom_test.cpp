// The Prometheus client, abort rules and SLO guard against a real Prometheus
// server (started by the test on loopback, scraping the test's own exporter
// every second): instant queries, an abort rule that breaches only after its
// `for` window, pre/post SLO checks and the recovery time after a "revert".
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "controller/prom/client.h"
#include "controller/prom/rules.h"
#include "controller/prom/slo.h"
#include "tests/node/controller/controller_env.h"
#include "tests/node/controller/prom_server.h"

namespace nq::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

class PromTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = PromServer::unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    server_.latency().Set(0.1);
    server_.errors().Set(0.001);
    Status st = server_.start();
    ASSERT_TRUE(st.ok()) << st.error().message();
    client_.emplace(prom::ClientOptions{server_.url(), 2s, ""});
  }

  // Waits until Prometheus has scraped a value of `query` satisfying `pred`.
  void await(const std::string& query, std::function<bool(double)> pred) {
    const auto deadline = SteadyClock::now() + 10s;
    while (SteadyClock::now() < deadline) {
      auto r = client_->query(query);
      if (r.ok() && !r->samples.empty() && pred(r->samples[0].value)) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "Prometheus never saw the expected value of " << query;
  }

  PromServer server_;
  // Created once the server has its port.
  std::optional<prom::PromClient> client_;
};

TEST_F(PromTest, InstantQueriesVectorScalarAndErrors) {
  auto v = client_->query("nqtest_request_latency_seconds");
  ASSERT_TRUE(v.ok()) << v.error().message();
  EXPECT_EQ(v->type, prom::QueryResult::Type::kVector);
  ASSERT_EQ(v->samples.size(), 1u);
  EXPECT_EQ(v->samples[0].labels.at("job"), "nqtest");
  EXPECT_EQ(v->samples[0].labels.at("service"), "gateway");
  EXPECT_DOUBLE_EQ(v->samples[0].value, 0.1);

  auto s = client_->query("scalar(nqtest_request_latency_seconds) * 10");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, prom::QueryResult::Type::kScalar);
  EXPECT_DOUBLE_EQ(s->samples[0].value, 1.0);

  auto none = client_->query("nqtest_no_such_metric");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->samples.empty());

  auto bad = client_->query("sum(");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status_code(), Code::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("parse error"));
}

TEST_F(PromTest, AbortRuleBreachesOnlyAfterItsForWindow) {
  prom::AbortRuleEvaluator ev(
      {{"error ratio", "max(nqtest_error_ratio)", prom::Comparison::kGreater, 0.05, 2s}});
  EXPECT_FALSE(ev.evaluate(*client_, SteadyClock::now()).has_value());
  EXPECT_EQ(ev.states()[0].status, prom::RuleStatus::kOk);

  server_.errors().Set(0.2);
  await("max(nqtest_error_ratio)", [](double v) { return v > 0.05; });
  const auto first = SteadyClock::now();
  EXPECT_FALSE(ev.evaluate(*client_, first).has_value());
  EXPECT_EQ(ev.states()[0].status, prom::RuleStatus::kPending);
  std::optional<prom::AbortRuleEvaluator::Breach> breach;
  while (!breach && SteadyClock::now() < first + 10s) {
    std::this_thread::sleep_for(250ms);
    breach = ev.evaluate(*client_, SteadyClock::now());
  }
  ASSERT_TRUE(breach.has_value());
  EXPECT_GE(SteadyClock::now() - first, 2s);
  EXPECT_DOUBLE_EQ(breach->value, 0.2);
  EXPECT_EQ(breach->rule->name, "error ratio");
}

TEST_F(PromTest, SloChecksAndRecoveryTime) {
  const std::vector<prom::SloCheck> slos = {
      {"p95 latency", "max(nqtest_request_latency_seconds)", prom::Comparison::kLess, 0.5},
      {"error ratio", "max(nqtest_error_ratio)", prom::Comparison::kLess, 0.01},
  };
  prom::SloReport report;
  report.experiment = "exp-slo";
  report.pre = prom::check_slos(*client_, slos, "pre-chaos");
  EXPECT_TRUE(report.pre->passed()) << prom::to_json(*report.pre).dump();

  // "Chaos": latency far above the bound.
  server_.latency().Set(0.9);
  await("max(nqtest_request_latency_seconds)", [](double v) { return v > 0.5; });
  EXPECT_FALSE(prom::check_slos(*client_, slos, "during").passed());

  // "Revert": the service recovers; Prometheus sees it at its next scrape.
  const auto reverted = SteadyClock::now();
  server_.latency().Set(0.12);
  report.recovery = prom::measure_recovery(*client_, slos, reverted, {200ms, 15s});
  ASSERT_TRUE(report.recovery->recovered);
  // One 1 s scrape interval, plus query and poll slack.
  EXPECT_LE(report.recovery->duration, 2500ms);
  report.post = prom::check_slos(*client_, slos, "post-chaos");
  EXPECT_TRUE(report.post->passed());

  const std::string table = prom::to_table(report);
  EXPECT_THAT(table, HasSubstr("p95 latency"));
  EXPECT_THAT(table, HasSubstr("result: PASS"));
  EXPECT_EQ(prom::to_json(report)["post"]["slos"][0]["value"], 0.12);
  std::printf("%s", table.c_str());
}

TEST(PromClientUnreachable, RefusedIsUnavailableHungIsDeadlineExceeded) {
  auto port = free_local_port();
  ASSERT_TRUE(port.ok());
  prom::PromClient refused({"http://127.0.0.1:" + std::to_string(*port), 1s, ""});
  auto r = refused.query("up");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().status_code(), Code::kUnavailable) << r.error().message();

  SilentListener hung;
  prom::PromClient slow({"http://" + hung.target(), 300ms, ""});
  const auto t0 = SteadyClock::now();
  auto h = slow.query("up");
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error().status_code(), Code::kDeadlineExceeded) << h.error().message();
  EXPECT_LT(SteadyClock::now() - t0, 2s);
}

}  // namespace
}  // namespace nq::testing
