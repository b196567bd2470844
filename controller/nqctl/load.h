// `nqctl sandbox load`: a small request workload between two sandbox pods.
// HTTP GETs from inside one pod's network namespace to another pod's nq-echo
// (port 8080), at a fixed rate, exported as the metrics a real HTTP service
// exports, under the names monitoring/prometheus-chaos-rules.yaml reads:
//
//   http_requests_total{namespace, pod, peer, code}          counter
//   http_request_duration_seconds{namespace, pod, peer}      histogram
//   http_request_errors_total{namespace, pod, peer, reason}  counter
//
// so chaos:slo:error_rate:1m and chaos:slo:latency:p95:1m are computed on a
// real workload whose path the faults cut, delay or starve. `namespace` and
// `pod` are the source pod's (the gateway's requests are the gateway's SLO),
// `peer` the target's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/netns.h"
#include "common/result.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace nq::nqctl {

struct LoadOptions {
  std::string ip;        // the target pod's address
  uint16_t port = 8080;  // nq-echo's HTTP responder
  std::string path = "/";
  double rate = 20;  // requests per second
  std::chrono::nanoseconds timeout = std::chrono::seconds(1);
  std::optional<std::chrono::nanoseconds> duration;  // none: until stop()
};

// InvalidArgument naming the flag when an option is out of range.
Status validate(const LoadOptions& options);

// How one request ended, as the series' labels. `code` is the HTTP status,
// or what a gateway answers its own client when its backend fails that way:
// 504 when the backend did not answer in time (a partition drops the SYN, a
// frozen process never replies), 503 when it refused or was unreachable, 502
// for any other transport failure (reset, malformed answer). `reason` is ""
// for a success, else "timeout", "unavailable", "failed" or "http_<code>".
struct Outcome {
  std::string code;
  std::string reason;
  bool error() const { return !reason.empty(); }
};
Outcome classify(const Result<int>& response);

// Open loop: request n is due at n / rate after the start, however long the
// earlier ones take, and its latency counts from that due time. A closed loop
// would send fewer requests exactly when the backend is slow and hide the
// slowness it should measure (coordinated omission).
std::chrono::nanoseconds due_offset(uint64_t n, double rate);
// Workers so that `rate` requests, each lasting up to `timeout`, never wait
// for a free one: ceil(rate * timeout) + 1, at most 512.
int workers_for(double rate, std::chrono::nanoseconds timeout);

// Buckets of http_request_duration_seconds: fine below 100 ms (the healthy
// path on a veth is well under 1 ms), and around the seed's bounds (p95 < 2 s,
// the 500 ms +- 100 ms delay scenario) above.
std::vector<double> latency_buckets();

struct LoadLabels {
  std::string namespace_name;  // of the source pod
  std::string pod;             // the source pod's name
  std::string peer;            // "<namespace>/<name>" of the target
};

// The series above, registered on `registry` (which must outlive this).
class LoadMetrics {
 public:
  LoadMetrics(prometheus::Registry& registry, LoadLabels labels);
  void observe(const Outcome& outcome, std::chrono::nanoseconds latency);

 private:
  LoadLabels labels_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Histogram* latency_;
};

// What a run did, for the summary line.
struct LoadTotals {
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::map<std::string, uint64_t> by_code;
  std::vector<double> latencies_ms;  // every request's, in completion order
};

class LoadGenerator {
 public:
  // `from` and `metrics` must outlive run().
  LoadGenerator(const Netns& from, LoadOptions options, LoadMetrics& metrics);
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Sends until the duration has passed or stop() is called, then waits for
  // the requests in flight (at most one timeout). Fails only when a worker
  // cannot join the source netns.
  Result<LoadTotals> run();
  // Thread-safe; returns at once.
  void stop();

 private:
  using Clock = std::chrono::steady_clock;
  void worker();

  const Netns& from_;
  const LoadOptions opts_;
  LoadMetrics& metrics_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Clock::time_point> due_;  // scheduled, not yet taken by a worker
  bool stopping_ = false;
  bool done_ = false;  // no more requests will be scheduled
  std::optional<Error> netns_error_;
  LoadTotals totals_;
};

// One line: "requests 1200, errors 3 (504: 3), latency p50 0.4 ms, p95 0.9 ms, p99 1.1 ms".
std::string summary_line(const LoadTotals& totals);

}  // namespace nq::nqctl
