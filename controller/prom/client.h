// Instant queries against a Prometheus HTTP API (GET /api/v1/query), with
// libcurl. The parser is a pure function of the response body.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nq::prom {

struct Sample {
  std::map<std::string, std::string> labels;  // the series' labels ("" for a scalar)
  double value = 0;                           // NaN and ±Inf as Prometheus sends them
  double timestamp = 0;                       // seconds since the epoch
};

struct QueryResult {
  enum class Type { kVector, kScalar } type = Type::kVector;
  // A vector's samples; a scalar is one sample without labels.
  std::vector<Sample> samples;
  std::vector<std::string> warnings;
};

// The body of a /api/v1/query answer: {"status":"success","data":{"resultType":
// "vector"|"scalar","result":...}}. An "error" status becomes an error carrying
// Prometheus' errorType and message (a bad PromQL query is InvalidArgument);
// matrix and string results are refused (an instant query of an expression
// yields neither unless it is misused).
Result<QueryResult> parse_query_response(std::string_view body);

// Something that answers instant queries; PromClient, or a script in tests.
class Querier {
 public:
  virtual ~Querier() = default;
  virtual Result<QueryResult> query(const std::string& promql) = 0;
};

struct ClientOptions {
  std::string base_url;  // "http://127.0.0.1:9090" (a path prefix is kept)
  std::chrono::milliseconds timeout{5000};
  std::string bearer_token;  // sent as Authorization when not empty
};

class PromClient final : public Querier {
 public:
  explicit PromClient(ClientOptions options) : options_(std::move(options)) {}
  // One GET; transport errors are Unavailable, a timeout DeadlineExceeded,
  // an HTTP error its mapped code with Prometheus' message.
  Result<QueryResult> query(const std::string& promql) override;

 private:
  ClientOptions options_;
};

}  // namespace nq::prom
