// SLO validation before and after an experiment, and recovery measurement:
// the time from the revert until every SLO is back within its bounds. The
// report is JSON (for `nqctl report` and archives) and a table for humans —
// what the seed's validate-slo.sh pre-chaos/post-chaos --export produced.
#pragma once

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "controller/prom/client.h"
#include "controller/prom/rules.h"

namespace nq::prom {

// Within bounds while `query <comparison> threshold` holds for every series
// (e.g. p95 latency "< 0.5", success ratio ">= 0.99"). No series is a failure:
// an SLO that cannot be measured is not met.
struct SloCheck {
  std::string name;
  std::string query;
  Comparison comparison = Comparison::kLess;
  double threshold = 0;
};

// The series value furthest on the wrong side of the bound (the largest for
// < and <=, the smallest for > and >=; for == and != the first violating one,
// else the first); none for an empty result.
std::optional<double> worst_value(const QueryResult& result, Comparison c, double threshold);

struct SloResult {
  std::string name, query, bound;  // bound: "< 0.5"
  std::optional<double> value;
  bool passed = false;
  std::string error;  // query error, or "no data"
};

struct SloPhase {
  std::string phase;  // "pre-chaos", "post-chaos", "recovery"
  std::chrono::system_clock::time_point at{};
  std::vector<SloResult> results;
  bool passed() const;
};

SloPhase check_slos(Querier& querier, const std::vector<SloCheck>& checks, std::string phase);

struct RecoveryOptions {
  std::chrono::milliseconds poll{1000};
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

struct Recovery {
  bool recovered = false;
  // From `reverted_at` to the first poll that found every SLO within bounds
  // (or to the timeout).
  std::chrono::milliseconds duration{0};
  int polls = 0;
  SloPhase last;  // the final poll's results
};

// Polls every `poll` until all SLOs pass or `timeout` after `reverted_at`
// has passed. `stop` (may be empty) ends it early, unrecovered.
Recovery measure_recovery(Querier& querier, const std::vector<SloCheck>& checks,
                          std::chrono::steady_clock::time_point reverted_at,
                          const RecoveryOptions& options,
                          const std::function<bool()>& stop = nullptr);

struct SloReport {
  std::string experiment;
  std::optional<SloPhase> pre, post;
  std::optional<Recovery> recovery;
  bool passed() const;
};

nlohmann::json to_json(const SloPhase& phase);
nlohmann::json to_json(const SloReport& report);
// One row per SLO: name, bound, pre, post, status; then the recovery time.
std::string to_table(const SloReport& report);

}  // namespace nq::prom
