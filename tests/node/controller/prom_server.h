// A real Prometheus server for tests: Debian's /usr/bin/prometheus started on
// 127.0.0.1 with a temporary configuration that scrapes a prometheus-cpp
// exposer of the test's own every second. Stopped by pid and its data
// directory removed by the destructor.
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/result.h"
#include "tests/node/core/agent_harness.h"

namespace nq::testing {

class PromServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus";
  // Why the server cannot run here ("" when it can).
  static std::string unavailable_reason();

  PromServer();
  ~PromServer();
  PromServer(const PromServer&) = delete;
  PromServer& operator=(const PromServer&) = delete;

  // Starts the exposer and Prometheus and waits until Prometheus has
  // scraped the exposer once.
  Status start(std::chrono::seconds timeout = std::chrono::seconds(30));
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log_tail() const;

  // The test's own series, job="nqtest": latency and error ratio of a
  // pretend service.
  prometheus::Gauge& latency() { return *latency_; }
  prometheus::Gauge& errors() { return *errors_; }

 private:
  TempDir dir_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Gauge* latency_ = nullptr;
  prometheus::Gauge* errors_ = nullptr;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace nq::testing
