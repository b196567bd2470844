#include "controller/prom/rules.h"

#include <cmath>

namespace nq::prom {

Result<Comparison> parse_comparison(std::string_view text, std::string_view field) {
  if (text == ">") return Comparison::kGreater;
  if (text == ">=") return Comparison::kGreaterEqual;
  if (text == "<") return Comparison::kLess;
  if (text == "<=") return Comparison::kLessEqual;
  if (text == "==") return Comparison::kEqual;
  if (text == "!=") return Comparison::kNotEqual;
  return Error::invalid_argument(
      field, "\"" + std::string(text) + "\" is not one of >, >=, <, <=, ==, !=");
}

std::string_view comparison_symbol(Comparison c) noexcept {
  switch (c) {
    case Comparison::kGreater:
      return ">";
    case Comparison::kGreaterEqual:
      return ">=";
    case Comparison::kLess:
      return "<";
    case Comparison::kLessEqual:
      return "<=";
    case Comparison::kEqual:
      return "==";
    case Comparison::kNotEqual:
      return "!=";
  }
  return "?";
}

bool compare(double v, Comparison c, double t) noexcept {
  if (std::isnan(v)) return false;
  switch (c) {
    case Comparison::kGreater:
      return v > t;
    case Comparison::kGreaterEqual:
      return v >= t;
    case Comparison::kLess:
      return v < t;
    case Comparison::kLessEqual:
      return v <= t;
    case Comparison::kEqual:
      return v == t;
    case Comparison::kNotEqual:
      return v != t;
  }
  return false;
}

std::optional<double> decisive_value(const QueryResult& result, Comparison c, double threshold) {
  if (result.samples.empty()) return std::nullopt;
  std::optional<double> best;
  for (const auto& s : result.samples) {
    const double v = s.value;
    if (std::isnan(v)) continue;
    if (!best) {
      best = v;
      continue;
    }
    switch (c) {
      case Comparison::kGreater:
      case Comparison::kGreaterEqual:
        if (v > *best) best = v;
        break;
      case Comparison::kLess:
      case Comparison::kLessEqual:
        if (v < *best) best = v;
        break;
      case Comparison::kEqual:
      case Comparison::kNotEqual:
        if (!compare(*best, c, threshold) && compare(v, c, threshold)) best = v;
        break;
    }
  }
  // Only NaN samples: report NaN, which never satisfies a comparison.
  return best ? best : std::optional<double>(std::nan(""));
}

std::string_view rule_status_name(RuleStatus s) noexcept {
  switch (s) {
    case RuleStatus::kOk:
      return "ok";
    case RuleStatus::kPending:
      return "pending";
    case RuleStatus::kBreached:
      return "breached";
    case RuleStatus::kNoData:
      return "no-data";
    case RuleStatus::kError:
      return "error";
  }
  return "?";
}

void observe(const AbortRule& rule, RuleState& state, std::chrono::steady_clock::time_point now,
             const Result<QueryResult>& result) {
  if (!result.ok()) {
    state.status = RuleStatus::kError;
    state.last_error = result.error().message();
    return;
  }
  state.last_error.clear();
  state.last_value = decisive_value(*result, rule.comparison, rule.threshold);
  if (!state.last_value || !compare(*state.last_value, rule.comparison, rule.threshold)) {
    state.holding_since.reset();
    state.status = state.last_value ? RuleStatus::kOk : RuleStatus::kNoData;
    return;
  }
  if (!state.holding_since) state.holding_since = now;
  state.status = (now - *state.holding_since >= rule.for_duration) ? RuleStatus::kBreached
                                                                   : RuleStatus::kPending;
}

AbortRuleEvaluator::AbortRuleEvaluator(std::vector<AbortRule> rules)
    : rules_(std::move(rules)), states_(rules_.size()) {}

std::optional<AbortRuleEvaluator::Breach> AbortRuleEvaluator::evaluate(
    Querier& querier, std::chrono::steady_clock::time_point now) {
  std::optional<Breach> first;
  for (size_t i = 0; i < rules_.size(); ++i) {
    observe(rules_[i], states_[i], now, querier.query(rules_[i].query));
    if (!first && states_[i].status == RuleStatus::kBreached)
      first = Breach{&rules_[i], *states_[i].last_value};
  }
  return first;
}

}  // namespace nq::prom
