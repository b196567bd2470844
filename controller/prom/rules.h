// Abort rules (PromQL + comparison + threshold + `for`) and SLO checks, as
// pure evaluation over query results, so scripted series test them.
//
// A rule's condition is evaluated on every sample of its query's result (one
// series breaching is enough, as with Prometheus alerts); a query that returns
// no series says nothing: the condition does not hold (as an alert with no
// data does not fire). A rule is breached only once its condition has held at
// every evaluation for the whole `for` window: from the first evaluation that
// saw it hold to the current one, with no evaluation in between that saw it
// not hold.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "controller/prom/client.h"

namespace nq::prom {

enum class Comparison { kGreater, kGreaterEqual, kLess, kLessEqual, kEqual, kNotEqual };

// ">", ">=", "<", "<=", "==", "!=". Errors name `field`.
Result<Comparison> parse_comparison(std::string_view text, std::string_view field);
std::string_view comparison_symbol(Comparison c) noexcept;
// NaN never satisfies a comparison (as in PromQL filters).
bool compare(double value, Comparison c, double threshold) noexcept;

struct AbortRule {
  std::string name;   // for reports; the query when empty
  std::string query;  // PromQL
  Comparison comparison = Comparison::kGreater;
  double threshold = 0;
  std::chrono::nanoseconds for_duration{0};
};

// The value of a result that decides the rule: the sample that satisfies the
// comparison "most" (the largest for > and >=, the smallest for < and <=, the
// first that satisfies it for == and !=); none for an empty result.
std::optional<double> decisive_value(const QueryResult& result, Comparison c, double threshold);

enum class RuleStatus { kOk, kPending, kBreached, kNoData, kError };
std::string_view rule_status_name(RuleStatus s) noexcept;

struct RuleState {
  RuleStatus status = RuleStatus::kOk;
  std::optional<std::chrono::steady_clock::time_point> holding_since;
  std::optional<double> last_value;
  std::string last_error;
};

// Feeds one evaluation (the query's result at `now`) into `state`. A query
// error changes nothing but the status and last_error: Prometheus being down
// must neither abort an experiment nor reset a pending window.
void observe(const AbortRule& rule, RuleState& state, std::chrono::steady_clock::time_point now,
             const Result<QueryResult>& result);

// Every rule's state across evaluations.
class AbortRuleEvaluator {
 public:
  explicit AbortRuleEvaluator(std::vector<AbortRule> rules);

  struct Breach {
    const AbortRule* rule;
    double value;
  };
  // Queries every rule now and returns the first breached one.
  std::optional<Breach> evaluate(Querier& querier, std::chrono::steady_clock::time_point now);

  const std::vector<AbortRule>& rules() const { return rules_; }
  const std::vector<RuleState>& states() const { return states_; }

 private:
  std::vector<AbortRule> rules_;
  std::vector<RuleState> states_;
};

}  // namespace nq::prom
