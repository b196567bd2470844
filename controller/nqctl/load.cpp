#include "controller/nqctl/load.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "common/traffic.h"

namespace nq::nqctl {

using std::chrono::nanoseconds;

Status validate(const LoadOptions& o) {
  if (o.ip.empty()) return Error::invalid_argument("--to", "the target has no IP address");
  if (o.port == 0) return Error::invalid_argument("--port", "must be 1..65535");
  if (!(o.rate > 0) || o.rate > 10000)
    return Error::invalid_argument("--rate", "must be above 0 and at most 10000 per second");
  if (o.timeout <= nanoseconds(0) || o.timeout > std::chrono::seconds(60))
    return Error::invalid_argument("--timeout", "must be above 0 and at most 60s");
  if (o.duration && *o.duration <= nanoseconds(0))
    return Error::invalid_argument("--duration", "must be above 0 (omit it to run until stopped)");
  if (o.path.empty() || o.path[0] != '/')
    return Error::invalid_argument("--path", "must start with /");
  return ok();
}

Outcome classify(const Result<int>& response) {
  if (response.ok()) {
    const int code = *response;
    if (code >= 500) return {std::to_string(code), "http_" + std::to_string(code)};
    return {std::to_string(code), ""};
  }
  switch (response.error().status_code()) {
    case Code::kDeadlineExceeded:
      return {"504", "timeout"};
    case Code::kUnavailable:
      return {"503", "unavailable"};
    default:
      return {"502", "failed"};
  }
}

nanoseconds due_offset(uint64_t n, double rate) {
  // In double seconds then rounded: n * (1e9 / rate) accumulates no drift,
  // unlike adding a rounded period n times.
  return nanoseconds(static_cast<int64_t>(std::llround(static_cast<double>(n) * 1e9 / rate)));
}

int workers_for(double rate, nanoseconds timeout) {
  const double in_flight = rate * std::chrono::duration<double>(timeout).count();
  return static_cast<int>(std::min(512.0, std::ceil(in_flight) + 1));
}

std::vector<double> latency_buckets() {
  // 1.1 and 1.25: a request that times out at the default 1 s is observed
  // just above it, and histogram_quantile() interpolates linearly within a
  // bucket -- with 1..1.5 as the next bucket a p95 of 1.001 s reads as 1.475 s.
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          0.75,   1,     1.1,    1.25,  1.5,  2,     3,    5,   10};
}

LoadMetrics::LoadMetrics(prometheus::Registry& registry, LoadLabels labels)
    : labels_(std::move(labels)) {
  requests_ = &prometheus::BuildCounter()
                   .Name("http_requests_total")
                   .Help("Requests sent by nqctl sandbox load, by status code")
                   .Register(registry);
  errors_ = &prometheus::BuildCounter()
                 .Name("http_request_errors_total")
                 .Help("Requests that failed, by reason (timeout, unavailable, failed, http_5xx)")
                 .Register(registry);
  auto& hist = prometheus::BuildHistogram()
                   .Name("http_request_duration_seconds")
                   .Help("Request latency from the request's due time to its answer or failure")
                   .Register(registry);
  latency_ = &hist.Add(
      {{"namespace", labels_.namespace_name}, {"pod", labels_.pod}, {"peer", labels_.peer}},
      latency_buckets());
  // The success series exists from the start, so the error-rate rule has a
  // denominator (and a 0 numerator) before the first request completes.
  requests_->Add({{"namespace", labels_.namespace_name},
                  {"pod", labels_.pod},
                  {"peer", labels_.peer},
                  {"code", "200"}});
}

void LoadMetrics::observe(const Outcome& outcome, nanoseconds latency) {
  const prometheus::Labels base = {
      {"namespace", labels_.namespace_name}, {"pod", labels_.pod}, {"peer", labels_.peer}};
  prometheus::Labels with_code = base;
  with_code["code"] = outcome.code;
  requests_->Add(with_code).Increment();
  if (outcome.error()) {
    prometheus::Labels with_reason = base;
    with_reason["reason"] = outcome.reason;
    errors_->Add(with_reason).Increment();
  }
  latency_->Observe(std::chrono::duration<double>(latency).count());
}

LoadGenerator::LoadGenerator(const Netns& from, LoadOptions options, LoadMetrics& metrics)
    : from_(from), opts_(std::move(options)), metrics_(metrics) {}

void LoadGenerator::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

void LoadGenerator::worker() {
  // Namespace membership is per thread: each worker joins the source pod's
  // netns itself, so every request leaves from the pod's own interface and
  // meets whatever the agent attached there.
  if (Status st = enter_netns(from_.fd()); !st.ok()) {
    std::lock_guard lock(mu_);
    if (!netns_error_) netns_error_ = std::move(st).error().wrapped("entering " + from_.path());
    stopping_ = true;
    cv_.notify_all();
    return;
  }
  for (;;) {
    Clock::time_point due;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !due_.empty() || done_; });
      if (due_.empty()) return;  // done_ and nothing left
      due = due_.front();
      due_.pop_front();
    }
    const Result<int> response = traffic::http_get(opts_.ip, opts_.port, opts_.path, opts_.timeout);
    const nanoseconds latency = Clock::now() - due;
    const Outcome outcome = classify(response);
    metrics_.observe(outcome, latency);
    std::lock_guard lock(mu_);
    ++totals_.requests;
    if (outcome.error()) ++totals_.errors;
    ++totals_.by_code[outcome.code];
    totals_.latencies_ms.push_back(std::chrono::duration<double, std::milli>(latency).count());
  }
}

Result<LoadTotals> LoadGenerator::run() {
  NQ_TRY(validate(opts_));
  const int n_workers = workers_for(opts_.rate, opts_.timeout);
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(n_workers));
  for (int i = 0; i < n_workers; ++i) workers.emplace_back([this] { worker(); });

  const auto start = Clock::now();
  for (uint64_t n = 0;; ++n) {
    const nanoseconds offset = due_offset(n, opts_.rate);
    if (opts_.duration && offset >= *opts_.duration) break;
    const auto due = start + offset;
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, due, [&] { return stopping_; })) break;
    due_.push_back(due);
    cv_.notify_one();
  }
  {
    std::lock_guard lock(mu_);
    // Requests not yet taken when stopped are not sent: a stop means now.
    if (stopping_) due_.clear();
    done_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers) t.join();
  std::lock_guard lock(mu_);
  if (netns_error_) return *netns_error_;
  return totals_;
}

std::string summary_line(const LoadTotals& t) {
  std::string s = "requests " + std::to_string(t.requests) + ", errors " + std::to_string(t.errors);
  std::string codes;
  for (const auto& [code, n] : t.by_code)
    if (code != "200") codes += (codes.empty() ? "" : ", ") + code + ": " + std::to_string(n);
  if (!codes.empty()) s += " (" + codes + ")";
  if (!t.latencies_ms.empty()) {
    std::vector<double> v = t.latencies_ms;
    std::sort(v.begin(), v.end());
    const auto rank = [&](double q) {
      const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
      return v[std::min(i, v.size() - 1)];
    };
    char buf[128];
    std::snprintf(buf, sizeof(buf), ", latency p50 %.1f ms, p95 %.1f ms, p99 %.1f ms", rank(0.5),
                  rank(0.95), rank(0.99));
    s += buf;
  }
  return s;
}

}  // namespace nq::nqctl
