// Prometheus responses parsed as the HTTP API sends them; abort rules and SLO
// checks evaluated over scripted series, with the `for` window exact.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <deque>

#include "controller/prom/client.h"
#include "controller/prom/rules.h"
#include "controller/prom/slo.h"

namespace nq::prom {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Tp = std::chrono::steady_clock::time_point;

TEST(PromParse, Vector) {
  auto r = parse_query_response(R"({"status":"success","data":{"resultType":"vector","result":[
      {"metric":{"__name__":"up","job":"a"},"value":[1700000000.5,"1"]},
      {"metric":{"job":"b"},"value":[1700000000.5,"NaN"]},
      {"metric":{},"value":[1700000000.5,"+Inf"]}]}})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->type, QueryResult::Type::kVector);
  ASSERT_EQ(r->samples.size(), 3u);
  EXPECT_EQ(r->samples[0].labels.at("job"), "a");
  EXPECT_EQ(r->samples[0].value, 1.0);
  EXPECT_DOUBLE_EQ(r->samples[0].timestamp, 1700000000.5);
  EXPECT_TRUE(std::isnan(r->samples[1].value));
  EXPECT_TRUE(std::isinf(r->samples[2].value));
}

TEST(PromParse, ScalarAndEmptyVectorAndWarnings) {
  auto s = parse_query_response(
      R"({"status":"success","data":{"resultType":"scalar","result":[1.0,"0.25"]}})");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type, QueryResult::Type::kScalar);
  ASSERT_EQ(s->samples.size(), 1u);
  EXPECT_EQ(s->samples[0].value, 0.25);

  auto e = parse_query_response(
      R"({"status":"success","warnings":["w1"],"data":{"resultType":"vector","result":[]}})");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->samples.empty());
  EXPECT_EQ(e->warnings, std::vector<std::string>{"w1"});
}

TEST(PromParse, ErrorsNameTheCauseAndField) {
  auto bad = parse_query_response(
      R"({"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().status_code(), Code::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("parse error"));

  auto timeout = parse_query_response(R"({"status":"error","errorType":"timeout","error":"x"})");
  ASSERT_FALSE(timeout.ok());
  EXPECT_EQ(timeout.error().status_code(), Code::kDeadlineExceeded);

  auto matrix =
      parse_query_response(R"({"status":"success","data":{"resultType":"matrix","result":[]}})");
  ASSERT_FALSE(matrix.ok());
  EXPECT_THAT(matrix.error().message(), HasSubstr("resultType"));

  auto value = parse_query_response(
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}})");
  ASSERT_FALSE(value.ok());
  EXPECT_THAT(value.error().message(), HasSubstr("result[0].value"));

  EXPECT_FALSE(parse_query_response("<html>502</html>").ok());
}

QueryResult vec(std::vector<double> values) {
  QueryResult r;
  for (double v : values) r.samples.push_back({{{"pod", "p"}}, v, 0});
  return r;
}

TEST(AbortRule, ForWindowMustHoldAtEveryEvaluation) {
  AbortRule rule{"errors", "q", Comparison::kGreater, 0.05, 10s};
  RuleState st;
  const Tp t0{};
  // A script of (seconds, value): breached only once the condition held from
  // its first true evaluation for 10 s without a gap.
  observe(rule, st, t0, vec({0.01}));
  EXPECT_EQ(st.status, RuleStatus::kOk);
  observe(rule, st, t0 + 5s, vec({0.2}));
  EXPECT_EQ(st.status, RuleStatus::kPending);
  observe(rule, st, t0 + 10s, vec({0.3}));
  EXPECT_EQ(st.status, RuleStatus::kPending);  // held for 5 s only
  observe(rule, st, t0 + 12s, vec({0.04}));    // dips: the window restarts
  EXPECT_EQ(st.status, RuleStatus::kOk);
  observe(rule, st, t0 + 15s, vec({0.3}));
  observe(rule, st, t0 + 24s, vec({0.3}));
  EXPECT_EQ(st.status, RuleStatus::kPending);
  observe(rule, st, t0 + 25s, vec({0.3}));
  EXPECT_EQ(st.status, RuleStatus::kBreached);
  EXPECT_EQ(*st.last_value, 0.3);
}

TEST(AbortRule, ErrorsNeitherBreachNorResetNoDataResets) {
  AbortRule rule{"lat", "q", Comparison::kGreaterEqual, 1, 4s};
  RuleState st;
  const Tp t0{};
  observe(rule, st, t0, vec({2}));
  observe(rule, st, t0 + 2s, Result<QueryResult>(Error::unavailable("prometheus down")));
  EXPECT_EQ(st.status, RuleStatus::kError);
  EXPECT_THAT(st.last_error, HasSubstr("prometheus down"));
  observe(rule, st, t0 + 4s, vec({1}));  // >= holds at equality, window kept across the error
  EXPECT_EQ(st.status, RuleStatus::kBreached);

  RuleState st2;
  observe(rule, st2, t0, vec({2}));
  observe(rule, st2, t0 + 2s, vec({}));
  EXPECT_EQ(st2.status, RuleStatus::kNoData);
  observe(rule, st2, t0 + 4s, vec({2}));
  EXPECT_EQ(st2.status, RuleStatus::kPending);
}

TEST(AbortRule, ZeroForBreachesAtOnceAndAnySeriesCounts) {
  AbortRule rule{"", "q", Comparison::kLess, 0.99, 0s};
  RuleState st;
  observe(rule, st, Tp{}, vec({0.999, 0.5, std::nan("")}));
  EXPECT_EQ(st.status, RuleStatus::kBreached);
  EXPECT_EQ(*st.last_value, 0.5);  // the most breaching series
  RuleState nan_only;
  observe(rule, nan_only, Tp{}, vec({std::nan("")}));
  EXPECT_EQ(nan_only.status, RuleStatus::kOk);  // NaN satisfies no comparison
}

TEST(AbortRule, ComparisonsParseAndNameTheField) {
  for (const char* op : {">", ">=", "<", "<=", "==", "!="}) {
    auto c = parse_comparison(op, "abortWhen[0].comparison");
    ASSERT_TRUE(c.ok()) << op;
    EXPECT_EQ(comparison_symbol(*c), op);
  }
  auto bad = parse_comparison("=>", "abortWhen[0].comparison");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message(), HasSubstr("abortWhen[0].comparison"));
  EXPECT_TRUE(compare(1, Comparison::kEqual, 1));
  EXPECT_FALSE(compare(std::nan(""), Comparison::kNotEqual, 1));
}

// Answers each query with the next scripted result.
class ScriptedQuerier final : public Querier {
 public:
  std::map<std::string, std::deque<Result<QueryResult>>> script;
  int calls = 0;
  Result<QueryResult> query(const std::string& q) override {
    ++calls;
    auto& queue = script.at(q);
    Result<QueryResult> r = queue.front();
    if (queue.size() > 1) queue.pop_front();
    return r;
  }
};

TEST(AbortRuleEvaluator, ReportsTheFirstBreachedRule) {
  ScriptedQuerier q;
  q.script["errors"] = {vec({0.5}), vec({0.5})};
  q.script["latency"] = {vec({0.1}), vec({0.1})};
  AbortRuleEvaluator ev({{"latency", "latency", Comparison::kGreater, 0.5, 0s},
                         {"errors", "errors", Comparison::kGreater, 0.05, 1s}});
  EXPECT_FALSE(ev.evaluate(q, Tp{}).has_value());
  EXPECT_EQ(ev.states()[1].status, RuleStatus::kPending);
  auto breach = ev.evaluate(q, Tp{} + 1s);
  ASSERT_TRUE(breach.has_value());
  EXPECT_EQ(breach->rule->name, "errors");
  EXPECT_EQ(breach->value, 0.5);
}

TEST(Slo, WorstSeriesDecidesAndNoDataFails) {
  ScriptedQuerier q;
  q.script["p95"] = {vec({0.1, 0.7})};
  q.script["success"] = {vec({0.999})};
  q.script["missing"] = {vec({})};
  q.script["broken"] = {Result<QueryResult>(Error::unavailable("down"))};
  SloPhase p = check_slos(q,
                          {{"p95 latency", "p95", Comparison::kLess, 0.5},
                           {"success", "success", Comparison::kGreaterEqual, 0.99},
                           {"missing", "missing", Comparison::kLess, 1},
                           {"broken", "broken", Comparison::kLess, 1}},
                          "pre-chaos");
  ASSERT_EQ(p.results.size(), 4u);
  EXPECT_FALSE(p.results[0].passed);
  EXPECT_EQ(*p.results[0].value, 0.7);
  EXPECT_EQ(p.results[0].bound, "< 0.5");
  EXPECT_TRUE(p.results[1].passed);
  EXPECT_FALSE(p.results[2].passed);
  EXPECT_EQ(p.results[2].error, "no data");
  EXPECT_FALSE(p.results[3].passed);
  EXPECT_THAT(p.results[3].error, HasSubstr("down"));
  EXPECT_FALSE(p.passed());
}

TEST(Slo, RecoveryIsTheFirstPollWithEverySloWithinBounds) {
  ScriptedQuerier q;
  q.script["p95"] = {vec({0.9}), vec({0.6}), vec({0.2}), vec({0.2})};
  q.script["ok"] = {vec({1}), vec({1}), vec({0}), vec({1})};
  const std::vector<SloCheck> checks = {{"p95", "p95", Comparison::kLess, 0.5},
                                        {"ok", "ok", Comparison::kEqual, 1}};
  const auto reverted = std::chrono::steady_clock::now();
  Recovery rec = measure_recovery(q, checks, reverted, {20ms, 5s});
  EXPECT_TRUE(rec.recovered);
  EXPECT_EQ(rec.polls, 4);  // p95 fine from poll 3, "ok" only from poll 4
  EXPECT_GE(rec.duration, 60ms);
  EXPECT_LT(rec.duration, 2s);

  ScriptedQuerier never;
  never.script["p95"] = {vec({0.9})};
  never.script["ok"] = {vec({1})};
  Recovery none = measure_recovery(never, checks, std::chrono::steady_clock::now(), {10ms, 50ms});
  EXPECT_FALSE(none.recovered);
  EXPECT_GE(none.duration, 40ms);
  EXPECT_GE(none.polls, 3);
}

TEST(Slo, ReportAsJsonAndTable) {
  ScriptedQuerier q;
  q.script["p95"] = {vec({0.12}), vec({0.31})};
  SloReport report;
  report.experiment = "exp-7";
  report.pre = check_slos(q, {{"p95 latency", "p95", Comparison::kLess, 0.5}}, "pre-chaos");
  report.post = check_slos(q, {{"p95 latency", "p95", Comparison::kLess, 0.5}}, "post-chaos");
  report.recovery = Recovery{true, 2300ms, 3, *report.post};
  const auto j = to_json(report);
  EXPECT_EQ(j["experiment"], "exp-7");
  EXPECT_TRUE(j["passed"].get<bool>());
  EXPECT_EQ(j["pre"]["slos"][0]["value"], 0.12);
  EXPECT_EQ(j["recovery"]["duration_ms"], 2300);
  const std::string table = to_table(report);
  EXPECT_THAT(table, HasSubstr("SLO"));
  EXPECT_THAT(table, HasSubstr("p95 latency  < 0.5  0.12  0.31  PASS"));
  EXPECT_THAT(table, HasSubstr("recovery: within bounds after 2.3 s"));
  EXPECT_THAT(table, HasSubstr("result: PASS"));
}

}  // namespace
}  // namespace nq::prom
