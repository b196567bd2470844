#include "agent/metrics/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <exception>

namespace nq {
namespace {

// From a netlink round trip (sub-millisecond) to a slow BPF load or a stressor
// start (seconds).
prometheus::Histogram::BucketBoundaries duration_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}

prometheus::Labels labels(std::initializer_list<std::pair<const char*, std::string_view>> kv) {
  prometheus::Labels out;
  for (const auto& [k, v] : kv) out.emplace(k, std::string(v));
  return out;
}

class StressLoadCollector final : public prometheus::Collectable {
 public:
  explicit StressLoadCollector(std::function<std::vector<StressLoad>()> source)
      : source_(std::move(source)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily cpu{"nodequake_agent_stress_cpu_ratio",
                                 "CPU stress: requested and achieved usage of the container's "
                                 "cgroup, as a share of its CPU limit (of the node's CPUs when "
                                 "unlimited)",
                                 prometheus::MetricType::Gauge,
                                 {}};
    prometheus::MetricFamily mem{"nodequake_agent_stress_memory_bytes",
                                 "Memory stress: requested bytes and bytes the stressor holds "
                                 "resident",
                                 prometheus::MetricType::Gauge,
                                 {}};
    for (const StressLoad& load : source_()) {
      auto& family = load.resource == StressLoad::Resource::kCpu ? cpu : mem;
      add(family, load, "requested", load.requested);
      if (load.achieved) add(family, load, "achieved", *load.achieved);
    }
    return {std::move(cpu), std::move(mem)};
  }

 private:
  static void add(prometheus::MetricFamily& family, const StressLoad& load, const char* measure,
                  double value) {
    prometheus::ClientMetric m;
    m.label = {
        {"container", load.container}, {"id", load.id}, {"measure", measure}, {"pod", load.pod}};
    m.gauge.value = value;
    family.metric.push_back(std::move(m));
  }

  std::function<std::vector<StressLoad>()> source_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> stress_load_collector(
    std::function<std::vector<StressLoad>()> source) {
  return std::make_shared<StressLoadCollector>(std::move(source));
}

AgentMetrics::AgentMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)) {
  prometheus::Registry& r = *registry_;
  active_ = &prometheus::BuildGauge()
                 .Name("nodequake_agent_injections_active")
                 .Help("Active injections on this node, by fault kind")
                 .Register(r);
  apply_duration_ = &prometheus::BuildHistogram()
                         .Name("nodequake_agent_apply_duration_seconds")
                         .Help("Time to apply one injection (journal write included)")
                         .Register(r);
  revert_duration_ = &prometheus::BuildHistogram()
                          .Name("nodequake_agent_revert_duration_seconds")
                          .Help("Time to revert one injection")
                          .Register(r);
  reverts_ = &prometheus::BuildCounter()
                  .Name("nodequake_agent_reverts_total")
                  .Help("Reverted injections, by fault kind and reason (revert, ttl, lease, ...)")
                  .Register(r);
  errors_ = &prometheus::BuildCounter()
                 .Name("nodequake_agent_errors_total")
                 .Help("Failed RPCs, by RPC and gRPC status code")
                 .Register(r);
  capability_ = &prometheus::BuildGauge()
                     .Name("nodequake_agent_capability")
                     .Help("Kernel capability probed at agent start (1 available, 0 missing)")
                     .Register(r);
  journal_entries_ = &prometheus::BuildGauge()
                          .Name("nodequake_agent_journal_entries")
                          .Help("Records in the agent's journal")
                          .Register(r)
                          .Add({});
  journal_bytes_ = &prometheus::BuildGauge()
                        .Name("nodequake_agent_journal_bytes")
                        .Help("Size of the agent's journal file")
                        .Register(r)
                        .Add({});
  killswitch_ = &prometheus::BuildGauge()
                     .Name("nodequake_agent_killswitch_engaged")
                     .Help("1 while the kill switch blocks new injections on this node")
                     .Register(r)
                     .Add({});
}

void AgentMetrics::observe_apply(std::string_view kind, double seconds) {
  apply_duration_->Add(labels({{"kind", kind}}), duration_buckets()).Observe(seconds);
}

void AgentMetrics::observe_revert(std::string_view kind, std::string_view reason, double seconds) {
  revert_duration_->Add(labels({{"kind", kind}}), duration_buckets()).Observe(seconds);
  reverts_->Add(labels({{"kind", kind}, {"reason", reason}})).Increment();
}

void AgentMetrics::count_error(std::string_view rpc, std::string_view code) {
  errors_->Add(labels({{"rpc", rpc}, {"code", code}})).Increment();
}

void AgentMetrics::set_active(std::string_view kind, double n) {
  active_->Add(labels({{"kind", kind}})).Set(n);
}

void AgentMetrics::set_capability(std::string_view name, bool available) {
  capability_->Add(labels({{"name", name}})).Set(available ? 1 : 0);
}

void AgentMetrics::set_journal_entries(double n) {
  journal_entries_->Set(n);
}
void AgentMetrics::set_journal_bytes(double n) {
  journal_bytes_->Set(n);
}
void AgentMetrics::set_killswitch(bool engaged) {
  killswitch_->Set(engaged ? 1 : 0);
}

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                                 std::shared_ptr<prometheus::Registry> registry, uint16_t port)
    : registry_(std::move(registry)), exposer_(std::move(exposer)), port_(port) {}

MetricsEndpoint::~MetricsEndpoint() = default;

void MetricsEndpoint::add(std::shared_ptr<prometheus::Collectable> c) {
  exposer_->RegisterCollectable(c);  // holds a weak_ptr; extra_ keeps it alive
  extra_.push_back(std::move(c));
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::start(
    const std::string& bind_address, std::shared_ptr<prometheus::Registry> registry) {
  // prometheus-cpp (civetweb underneath) reports a failed bind by throwing from
  // the constructor; this is the edge where that becomes an Error.
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(bind_address, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return Error::unavailable("metrics endpoint cannot listen on " + bind_address + ": " +
                              e.what());
  }
  exposer->RegisterCollectable(registry);
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0 || ports.front() > 65535)
    return Error::internal("metrics endpoint on " + bind_address + " reports no listening port");
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(
      std::move(exposer), std::move(registry), static_cast<uint16_t>(ports.front())));
}

}  // namespace nq
