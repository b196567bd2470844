// The agent's Prometheus metrics and the HTTP endpoint that serves them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace nq {

// Typed recorders over one registry. Families are registered once in the
// constructor; children per label set are created on first use (Family::Add is
// internally locked and returns the existing child), so every method may be
// called from any thread.
class AgentMetrics {
 public:
  explicit AgentMetrics(std::shared_ptr<prometheus::Registry> registry);

  void observe_apply(std::string_view kind, double seconds);
  void observe_revert(std::string_view kind, std::string_view reason, double seconds);
  void count_error(std::string_view rpc, std::string_view code);
  void set_active(std::string_view kind, double n);
  void set_capability(std::string_view name, bool available);
  void set_journal_entries(double n);
  void set_journal_bytes(double n);
  void set_killswitch(bool engaged);

  const std::shared_ptr<prometheus::Registry>& registry() const noexcept { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>* active_;
  prometheus::Family<prometheus::Histogram>* apply_duration_;
  prometheus::Family<prometheus::Histogram>* revert_duration_;
  prometheus::Family<prometheus::Counter>* reverts_;
  prometheus::Family<prometheus::Counter>* errors_;
  prometheus::Family<prometheus::Gauge>* capability_;
  prometheus::Gauge* journal_entries_;
  prometheus::Gauge* journal_bytes_;
  prometheus::Gauge* killswitch_;
};

// Serves a registry at http://<bind_address>/metrics until destroyed.
class MetricsEndpoint {
 public:
  // "0.0.0.0:9464", "127.0.0.1:0" (any free port; see port()). Unavailable,
  // naming the address, when it cannot listen there.
  static Result<std::unique_ptr<MetricsEndpoint>> start(
      const std::string& bind_address, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsEndpoint();
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // The port actually listened on.
  uint16_t port() const noexcept { return port_; }

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                  std::shared_ptr<prometheus::Registry> registry, uint16_t port);
  // The exposer only holds a weak_ptr to what it serves.
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_;
};

}  // namespace nq
