// The agent's Prometheus metrics and the HTTP endpoint that serves them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace prometheus {
class Collectable;
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

// A stress fault's load in one container: what was asked for next to what the
// container's own accounting shows.
struct StressLoad {
  enum class Resource { kCpu, kMemory };
  std::string id;
  std::string pod;  // namespace/name
  std::string container;
  Resource resource = Resource::kCpu;
  // cpu: share of the container's CPU limit (0.8 = 80 %); memory: bytes.
  double requested = 0;
  // Unset before the first measurement and once the stressor is gone.
  std::optional<double> achieved;
};

// Exposes nodequake_agent_stress_cpu_ratio and nodequake_agent_stress_memory_bytes
// ({id, pod, container, measure="requested"|"achieved"}) from `source`, read at
// every scrape. Pulled rather than set: a series exists exactly while its
// injection does, so nothing has to remember to delete it on revert.
std::shared_ptr<prometheus::Collectable> stress_load_collector(
    std::function<std::vector<StressLoad>()> source);

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

  // Serves `c` next to the registry, for as long as the endpoint lives.
  void add(std::shared_ptr<prometheus::Collectable> c);

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                  std::shared_ptr<prometheus::Registry> registry, uint16_t port);
  // The exposer only holds a weak_ptr to what it serves.
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<std::shared_ptr<prometheus::Collectable>> extra_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_;
};

}  // namespace nq
